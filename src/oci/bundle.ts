import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { isAbsolute, join, posix, resolve } from 'node:path';
import * as v from 'valibot';
import { check, jsonObject } from '../platform/schema.js';
import type { Preopen } from '../wasi/sandbox.js';
import { BundleError } from './errors.js';

/**
 * The part of the runtime-spec's config.json (github.com/opencontainers/runtime-spec, config.md)
 * that Roam uses. Namespaces, cgroups, capabilities, seccomp and the like have no meaning for a
 * WebAssembly guest (it reaches nothing but what its host hands it) and are ignored.
 */
const Mount = jsonObject(
  {
    destination: v.pipe(v.string(), v.startsWith('/', 'expected an absolute path')),
    type: v.optional(v.string()),
    source: v.optional(v.string()),
    options: v.optional(v.array(v.string())),
  },
  'a mount',
);

export const OciConfig = jsonObject(
  {
    ociVersion: v.string('expected the runtime-spec version'),
    process: jsonObject(
      {
        args: v.pipe(
          v.array(v.string(), 'expected an array of strings'),
          v.minLength(1, 'expected the module to run as args[0]'),
        ),
        env: v.optional(v.array(v.string(), 'expected an array of KEY=VALUE strings'), []),
        cwd: v.optional(v.pipe(v.string(), v.startsWith('/', 'expected an absolute path')), '/'),
        terminal: v.optional(v.boolean()),
      },
      'the process to run',
    ),
    root: jsonObject({ path: v.string('expected the root file system path') }, 'the root file system'),
    mounts: v.optional(v.array(Mount, 'expected an array of mounts'), []),
  },
  'a runtime-spec config',
);
export type OciConfig = v.InferOutput<typeof OciConfig>;

/** What the guest process runs: a module of the rootfs with its arguments, environment and directories. */
export interface GuestLaunch {
  /** The module's path on the host (inside the rootfs). */
  modulePath: string;
  /** argv, args[0] as the image named it. */
  args: string[];
  env: Record<string, string>;
  /** The rootfs at `/`, then each bind mount of a directory at its destination. */
  preopens: Preopen[];
}

/** Reads and checks BUNDLE/config.json and the module its args name. */
export function readBundle(bundle: string): GuestLaunch {
  const configPath = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (error) {
    throw new BundleError(`${configPath}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BundleError(`${configPath}: not JSON`, { cause: error });
  }
  return launchOf(bundle, parseConfig(json, configPath));
}

export function parseConfig(json: unknown, where = 'config.json'): OciConfig {
  const checked = check(OciConfig, json);
  if (!checked.ok) throw new BundleError(`${where}: ${checked.message}`);
  return checked.value;
}

/** The guest a checked config describes; `bundle` is where root.path is relative to. */
export function launchOf(bundle: string, config: OciConfig): GuestLaunch {
  const rootfs = resolve(bundle, config.root.path);
  const { args, cwd, terminal } = config.process;
  // A terminal needs --console-socket and a pty the guest's stdio would be bound to: not yet.
  if (terminal) throw new BundleError('process.terminal: a terminal (podman run -t) is not supported; run without -t');
  const guestModule = posix.resolve(cwd, args[0]!);
  const modulePath = join(rootfs, guestModule);
  checkWasmModule(modulePath, args[0]!);
  const env: Record<string, string> = {};
  for (const entry of config.process.env) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new BundleError(`process.env: "${entry}": expected KEY=VALUE`);
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  // roam cc's _start enters ROAM_CWD (runtime/src/crt1-command.c): the process's cwd.
  env.ROAM_CWD = cwd;
  return { modulePath, args: [...args], env, preopens: [{ guestPath: '/', hostPath: rootfs }, ...bindMounts(config)] };
}

/**
 * Bind mounts of directories become preopened directories. The engines also bind files
 * (/etc/hosts, /etc/resolv.conf, /run/.containerenv): WASI preopens only directories, so those
 * are left out, as are the kernel's file systems (proc, sysfs, tmpfs, devpts, mqueue).
 */
function bindMounts(config: OciConfig): Preopen[] {
  const preopens: Preopen[] = [];
  for (const mount of config.mounts) {
    const isBind = mount.type === 'bind' || mount.options?.includes('bind') || mount.options?.includes('rbind');
    if (!isBind || mount.source === undefined || !isAbsolute(mount.source)) continue;
    if (!isDirectory(mount.source)) continue;
    preopens.push({ guestPath: mount.destination, hostPath: mount.source });
  }
  return preopens;
}

const wasmMagic = [0x00, 0x61, 0x73, 0x6d];

/** `args[0]` must name a WebAssembly module (by its magic number; V8 checks the rest when it loads it). */
function checkWasmModule(path: string, named: string): void {
  let fd: number;
  try {
    if (!statSync(path).isFile()) throw new BundleError(`process.args[0] ${named}: not a file`);
    fd = openSync(path, 'r');
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError(`process.args[0] ${named}: no such file in the container's root file system`, {
      cause: error,
    });
  }
  const head = Buffer.alloc(4);
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (!wasmMagic.every((byte, i) => head[i] === byte)) {
    throw new BundleError(
      `process.args[0] ${named}: not a WebAssembly module (roam-runtime runs modules built by roam cc or roam build)`,
    );
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
