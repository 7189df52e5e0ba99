import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as v from 'valibot';
import { parse as parseYaml } from 'yaml';
import { isAllowRule } from '../platform/allow-list.js';
import { RoamError } from '../platform/errors.js';
import { check, jsonRecord, strictJsonObject, tcpPortSchema } from '../platform/schema.js';

/**
 * The spec of a container of several processes (`roam run -f app.yaml`), in the spirit of a
 * compose file or a pod: the container's name, ports and connect allow-list, what its processes
 * share (preopened directories, environment defaults), and each process: its module, arguments,
 * environment, where its stdin comes from and what its exit does. Everything wrong with a spec is
 * found here, before anything starts.
 */

export type SpecErrorCode =
  /** Not YAML, or not the shape of a spec (the message names the field). */
  | 'ROAM_SPEC_INVALID'
  /** Two processes with one name. */
  | 'ROAM_SPEC_DUPLICATE_NAME'
  /** A pipe from a process the spec does not have. */
  | 'ROAM_SPEC_UNKNOWN_PROCESS'
  /** Pipes that go round in a circle, or one stdout piped into two stdins. */
  | 'ROAM_SPEC_PIPE'
  /** A port published twice, or listened on by two processes. */
  | 'ROAM_SPEC_PORT_CLASH'
  /** A module or a directory the spec names does not exist. */
  | 'ROAM_SPEC_MISSING_FILE';

export class SpecError extends RoamError {
  constructor(
    readonly code: SpecErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const nameSchema = v.pipe(
  v.string('expected a name'),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'expected a name of letters, digits, _ . - (at most 63)'),
);

/** `HOSTPORT:PORT`, or `PORT` for both. */
const publishSchema = v.pipe(
  v.union([v.string(), v.number()], 'expected HOSTPORT:PORT'),
  v.transform(String),
  v.regex(/^\d{1,5}(:\d{1,5})?$/, 'expected HOSTPORT:PORT'),
  v.transform((text) => {
    const [host, port = host] = text.split(':') as [string, string?];
    return { hostPort: Number(host), port: Number(port) };
  }),
  v.check((p) => [p.hostPort, p.port].every((n) => n >= 1 && n <= 65535), 'expected TCP ports (1-65535)'),
);

/** `HOST[:GUEST]`: the guest sees HOST (relative to the spec's folder) under GUEST. */
const dirSchema = v.pipe(
  v.string('expected HOST[:GUEST]'),
  v.regex(/^[^:]+(:[^:]+)?$/, 'expected HOST[:GUEST]'),
  v.transform((text) => {
    const [hostPath, guestPath = hostPath] = text.split(':') as [string, string?];
    return { hostPath, guestPath };
  }),
);

const envSchema = jsonRecord(
  v.pipe(v.union([v.string(), v.number(), v.boolean()]), v.transform(String)),
  'a map of NAME: value',
);

const processSchema = strictJsonObject(
  {
    name: nameSchema,
    module: v.pipe(
      v.string('expected the path of a .wasm module'),
      v.minLength(1, 'expected the path of a .wasm module'),
    ),
    args: v.optional(
      v.array(v.pipe(v.union([v.string(), v.number()]), v.transform(String)), 'expected a list of arguments'),
      [],
    ),
    env: v.optional(envSchema, {}),
    /** Another process whose stdout becomes this one's stdin. */
    stdin: v.optional(strictJsonObject({ from: nameSchema }, '{from: PROCESS}')),
    /** The ports this process listens on, so that two processes that would clash are refused. */
    listens: v.optional(v.array(tcpPortSchema, 'expected a list of ports'), []),
    onExit: v.optional(v.picklist(['continue', 'stop-container'], 'expected continue or stop-container'), 'continue'),
  },
  'a process: {name, module, args, env, stdin, listens, onExit}',
);

export const containerSpecSchema = strictJsonObject(
  {
    name: nameSchema,
    ports: v.optional(v.array(publishSchema, 'expected a list of HOSTPORT:PORT'), []),
    dirs: v.optional(v.array(dirSchema, 'expected a list of HOST[:GUEST]'), []),
    env: v.optional(envSchema, {}),
    /** Where outgoing connections may go; absent: anywhere. */
    connect: v.optional(
      v.array(
        v.pipe(v.string(), v.check(isAllowRule, 'expected ADDR[/PREFIX][:PORT] or none')),
        'expected a list of rules',
      ),
    ),
    processes: v.pipe(
      v.array(processSchema, 'expected a list of processes'),
      v.minLength(1, 'expected at least one process'),
    ),
  },
  'a container spec: {name, ports, dirs, env, connect, processes}',
);

export type MultiProcessSpec = v.InferOutput<typeof containerSpecSchema>;
export type ProcessSpec = MultiProcessSpec['processes'][number];

/**
 * A spec from YAML text, checked for shape and consistency; paths stay as written (relative ones
 * are relative to `baseDir`, which `loadSpec` resolves and checks).
 */
export function parseSpec(text: string, source = 'the spec'): MultiProcessSpec {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new SpecError('ROAM_SPEC_INVALID', `${source}: not YAML: ${(error as Error).message.split('\n')[0]}`, {
      cause: error,
    });
  }
  const checked = check(containerSpecSchema, document);
  if (!checked.ok) throw new SpecError('ROAM_SPEC_INVALID', `${source}: ${checked.message}`);
  checkConsistent(checked.value, source);
  return checked.value;
}

/** What is wrong between the fields of a well-shaped spec: names, pipes, ports. */
function checkConsistent(spec: MultiProcessSpec, source: string): void {
  const names = new Set<string>();
  for (const p of spec.processes) {
    if (names.has(p.name))
      throw new SpecError('ROAM_SPEC_DUPLICATE_NAME', `${source}: two processes are named ${p.name}`);
    names.add(p.name);
  }
  const readerOf = new Map<string, string>();
  for (const p of spec.processes) {
    const from = p.stdin?.from;
    if (from === undefined) continue;
    if (!names.has(from))
      throw new SpecError(
        'ROAM_SPEC_UNKNOWN_PROCESS',
        `${source}: process ${p.name} reads stdin from ${from}, which the spec does not have`,
      );
    const other = readerOf.get(from);
    if (other !== undefined)
      throw new SpecError(
        'ROAM_SPEC_PIPE',
        `${source}: the stdout of ${from} is piped into both ${other} and ${p.name}`,
      );
    readerOf.set(from, p.name);
  }
  const sourceOf = new Map(spec.processes.map((p) => [p.name, p.stdin?.from]));
  for (const p of spec.processes) {
    // Each process reads from at most one other: follow the chain; coming back to p is a cycle.
    const chain = [p.name];
    for (let at = sourceOf.get(p.name); at !== undefined; at = sourceOf.get(at)) {
      chain.push(at);
      if (at === p.name)
        throw new SpecError('ROAM_SPEC_PIPE', `${source}: pipes go round in a cycle: ${chain.reverse().join(' -> ')}`);
      if (chain.length > spec.processes.length) break;
    }
  }
  const hostPorts = new Set<number>();
  const ports = new Set<number>();
  for (const { hostPort, port } of spec.ports) {
    if (hostPorts.has(hostPort))
      throw new SpecError('ROAM_SPEC_PORT_CLASH', `${source}: host port ${hostPort} is published twice`);
    if (ports.has(port)) throw new SpecError('ROAM_SPEC_PORT_CLASH', `${source}: port ${port} is published twice`);
    hostPorts.add(hostPort);
    ports.add(port);
  }
  const listener = new Map<number, string>();
  for (const p of spec.processes) {
    for (const port of p.listens) {
      const other = listener.get(port);
      if (other !== undefined)
        throw new SpecError(
          'ROAM_SPEC_PORT_CLASH',
          `${source}: processes ${other} and ${p.name} both listen on port ${port}`,
        );
      listener.set(port, p.name);
    }
  }
}

/** A spec file, parsed and checked, with its modules and directories resolved and present. */
export function loadSpec(path: string): MultiProcessSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SpecError(
      'ROAM_SPEC_MISSING_FILE',
      `${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
      { cause: error },
    );
  }
  const spec = parseSpec(text, path);
  const base = dirname(resolve(path));
  const processes = spec.processes.map((p) => {
    const module = resolve(base, p.module);
    if (!existsSync(module) || !statSync(module).isFile())
      throw new SpecError('ROAM_SPEC_MISSING_FILE', `${path}: process ${p.name}: module ${p.module} does not exist`);
    return { ...p, module };
  });
  const dirs = spec.dirs.map((d) => {
    const hostPath = resolve(base, d.hostPath);
    if (!existsSync(hostPath) || !statSync(hostPath).isDirectory())
      throw new SpecError('ROAM_SPEC_MISSING_FILE', `${path}: directory ${d.hostPath} does not exist`);
    return { ...d, hostPath };
  });
  return { ...spec, processes, dirs };
}
