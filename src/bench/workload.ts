// The shape of a `switchboard bench` workload. A workload is one file in workloads/: `prepare`
// runs once per transport in the main thread (accounts, agents: whatever its clients need) and
// returns plain data; `open` runs in a load-generator worker, once per client, and returns the
// client whose `op` is timed over and over. Add the file to workloads/index.ts to make it known.
import type { BenchAccounts } from './accounts.js';
import type { AgentRef } from './agent.js';

/** How a client reaches the relay: `host:port` (TLS, pinned) or `plain://host:port`. */
export interface Transport {
  /** The address as the client passes it to RelayClient.connect. */
  server: string;
  /** Whether it is TLS. */
  tls: boolean;
  /** The relay certificate's SHA-256 (pinned for TLS connections). */
  fingerprint: string;
  /** A plaintext address that is not loopback was allowed (`--insecure`). */
  insecure: boolean;
}

/** What `prepare` gets: the transport, the accounts helper, how many clients at most, a scratch dir. */
export interface PrepareContext {
  transport: Transport;
  accounts: BenchAccounts;
  /** The most clients any phase of this run will use. */
  maxClients: number;
  /** A directory of this run, removed at the end. */
  dir: string;
  /** The agent on this transport (started the first time a workload asks; stopped by the run). */
  agent(): Promise<AgentRef>;
  /** Processes started for the workload are stopped by the run: register them here. */
  onCleanup(stop: () => Promise<unknown>): void;
}

/** What `open` gets in the worker. */
export interface ClientContext {
  transport: Transport;
  /** This client's number, 0 … clients-1 (the same across the workers of a phase). */
  index: number;
  /** The clients of this phase. */
  clients: number;
  /** What `prepare` returned. */
  data: unknown;
}

/** One load-generating client. */
export interface BenchClient {
  /** One operation; resolves with the payload bytes it moved (0 where none flow) once complete. */
  op(): Promise<number>;
  /** Leaves: closes connections, ends shells. */
  close(): Promise<void>;
}

export interface Workload {
  name: string;
  /** What one operation is, as the report states it. */
  describe: string;
  /** Whether bytes flow, so MB/s is reported. */
  bytes?: boolean;
  prepare(ctx: PrepareContext): Promise<unknown>;
  open(ctx: ClientContext): Promise<BenchClient>;
}
