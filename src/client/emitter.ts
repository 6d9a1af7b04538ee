// A small event emitter for client code that also runs in the browser (node:events does not):
// on/once/off/emit with Node's semantics for what client code uses — listeners run in the order
// added, synchronously, and one added or removed during an emit does not change that emit.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

export class Emitter {
  readonly #listeners = new Map<string, Listener[]>();

  on(event: string, listener: Listener): this {
    const list = this.#listeners.get(event);
    if (list) list.push(listener);
    else this.#listeners.set(event, [listener]);
    return this;
  }

  once(event: string, listener: Listener): this {
    const wrapper: Listener & { inner?: Listener } = (...args) => {
      this.off(event, wrapper);
      listener(...args);
    };
    wrapper.inner = listener;
    return this.on(event, wrapper);
  }

  /** Removes one registration of `listener` (added with on or once). */
  off(event: string, listener: Listener): this {
    const list = this.#listeners.get(event);
    if (!list) return this;
    const i = list.findIndex(
      (l) => l === listener || (l as { inner?: Listener }).inner === listener,
    );
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#listeners.delete(event);
    return this;
  }

  emit(event: string, ...args: unknown[]): boolean {
    const list = this.#listeners.get(event);
    if (!list) return false;
    for (const listener of [...list]) listener(...args);
    return true;
  }

  listenerCount(event: string): number {
    return this.#listeners.get(event)?.length ?? 0;
  }
}
