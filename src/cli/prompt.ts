// Terminal prompts: passwords without echo, yes/no questions; never used without a TTY.
import { UsageError } from './exit-codes.js';
import type { Io } from './command.js';

export function interactive(io: Io): boolean {
  return Boolean(io.stdin.isTTY && io.stderr.isTTY);
}

/** Reads one line from the terminal in raw mode; `echo` false hides it (passwords). */
export function readLine(io: Io, prompt: string, echo: boolean): Promise<string> {
  const { stdin, stderr } = io;
  if (!stdin.isTTY) throw new UsageError('no terminal to ask on');
  stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    const done = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003')
          return done(Object.assign(new Error('interrupted'), { interrupted: true }));
        if (ch === '\u0004' && value === '') return done(new UsageError('no input'));
        if (ch === '\u007f' || ch === '\b') {
          if (value.length > 0) {
            value = value.slice(0, -1);
            if (echo) stderr.write('\b \b');
          }
          continue;
        }
        if (ch < ' ') continue;
        value += ch;
        if (echo) stderr.write(ch);
      }
    };
    stdin.on('data', onData);
  });
}

/** Reads all of standard input (for --password-stdin); one trailing newline is dropped. */
export async function readStdinSecret(io: Io, limitBytes = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    size += (chunk as Buffer).length;
    if (size > limitBytes)
      throw new UsageError(
        `standard input is over ${limitBytes} bytes; is that really a password?`,
      );
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export async function confirm(io: Io, question: string): Promise<boolean> {
  const answer = await readLine(io, `${question} [y/N] `, true);
  return /^y(es)?$/i.test(answer.trim());
}
