import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { check, jsonObject } from '../platform/schema.js';
import { RuntimeStateError } from './errors.js';
import { move, type Status } from './lifecycle.js';

/** Where state lives unless the engine passes --root (runc's is /run/runc). */
export const defaultRoot = '/run/roam-runtime';

/** The runtime-spec version this runtime follows. */
export const ociVersion = '1.0.2';

/** What the runtime keeps about one container, in ROOT/ID/state.json. */
const StoredState = jsonObject(
  {
    id: v.string(),
    bundle: v.string(),
    status: v.picklist(['created', 'running', 'stopped']),
    pid: v.number(),
    /** The guest process's start time (/proc/PID/stat field 22): a reused pid is not ours. */
    pidStartTime: v.string(),
    /** ISO time of `create`. */
    created: v.string(),
  },
  'a roam-runtime container state',
);
export type StoredState = v.InferOutput<typeof StoredState>;

/** The state of a container as `roam-runtime state` prints it (runtime-spec, runtime.md). */
export interface SpecState {
  ociVersion: string;
  id: string;
  status: Status;
  pid: number;
  bundle: string;
  created: string;
}

const idPattern = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;

/** The containers of one --root: a directory each, holding its state and its guest's start socket. */
export class StateStore {
  constructor(readonly root: string) {}

  /** ROOT/ID, for a valid id. */
  directory(id: string): string {
    if (!idPattern.test(id)) throw new RuntimeStateError(`invalid container id "${id}"`);
    return join(this.root, id);
  }

  /** Makes ROOT/ID for a new container; an existing one is an error. */
  reserve(id: string): string {
    const dir = this.directory(id);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      const exists = (error as NodeJS.ErrnoException).code === 'EEXIST';
      throw new RuntimeStateError(exists ? `container ${id} already exists` : `${dir}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return dir;
  }

  /** The stored state, its status brought up to date (a guest process that ended is stopped). */
  load(id: string): StoredState {
    const path = join(this.directory(id), 'state.json');
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      throw new RuntimeStateError(missing ? `container ${id} does not exist` : `${path}: damaged state`, {
        cause: error,
      });
    }
    const checked = check(StoredState, json);
    if (!checked.ok) throw new RuntimeStateError(`${path}: ${checked.message}`);
    const state = checked.value;
    if (state.status !== 'stopped' && !isAlive(state.pid, state.pidStartTime)) {
      return { ...state, status: move(id, state.status, 'stopped') };
    }
    return state;
  }

  /** Writes the state atomically (a reader sees the old one or the new one). */
  save(state: StoredState): void {
    const dir = this.directory(state.id);
    const temporary = join(dir, 'state.json.new');
    writeFileSync(temporary, `${JSON.stringify(state)}\n`);
    renameSync(temporary, join(dir, 'state.json'));
  }

  remove(id: string): void {
    rmSync(this.directory(id), { recursive: true, force: true });
  }
}

export function specState(state: StoredState): SpecState {
  return {
    ociVersion,
    id: state.id,
    status: state.status,
    // runc reports no pid once the process is gone.
    pid: state.status === 'stopped' ? 0 : state.pid,
    bundle: state.bundle,
    created: state.created,
  };
}

/** The start time of a live process from /proc/PID/stat; undefined when it is gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "PID (COMM) STATE ..." where COMM may hold spaces and parentheses: fields count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [processState, startTime] = [fields[0], fields[19]];
  return processState === 'Z' || processState === 'X' ? undefined : startTime;
}

export function isAlive(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime;
}
