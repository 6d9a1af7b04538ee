// Every workload `switchboard bench` knows, in the order it runs them. A new one is a file here
// implementing Workload (../workload.ts), and a line below.
import type { Workload } from '../workload.js';
import { chat } from './chat.js';
import { echo } from './echo.js';
import { exec } from './exec.js';
import { login } from './login.js';
import { pay } from './pay.js';
import { stream } from './stream.js';

export const WORKLOADS: readonly Workload[] = [login, exec, echo, stream, chat, pay];

export function workloadNamed(name: string): Workload | undefined {
  return WORKLOADS.find((w) => w.name === name);
}
