import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sha256 } from '../build/manifest.js';
import { createStopFlag, type EngineState, type GlobalValue, Instance } from '../engine/instance.js';
import { compileModule, type LoadedModule } from '../engine/module.js';
import { type Image, writeImage } from '../image/image.js';
import { hostIsa } from '../platform/isa.js';
import { WasiExit, WasiHost, type WasiHostState } from '../wasi/host.js';
import type { Preopen } from '../wasi/sandbox.js';
import { ControlServer } from './control.js';
import type { CheckpointRequest, ControlReply } from './control-protocol.js';

/** The state blob of a checkpoint image. */
export interface ContainerState {
  /** Where the guest's preopened directories were on the source; the destination may remap them. */
  preopens: Preopen[];
  engine: EngineState;
  globals: GlobalValue[];
  host: WasiHostState;
}

export interface ContainerOptions {
  /** Makes the container addressable for `roam checkpoint NAME`. */
  name?: string;
  /** Called right before the guest first runs (after a restore: as its rewind begins). */
  onStart?: () => void;
}

/** A container cannot start or restore; the message says why, in one line. */
export class ContainerError extends Error {}

export const isWasiExit = (error: unknown) => (error instanceof WasiExit ? error.code : undefined);

/**
 * One guest program and its host, run to completion on this node, answering checkpoint requests
 * along the way. Created fresh from a module or from a checkpoint image.
 */
export class Container {
  private constructor(
    private readonly loaded: LoadedModule,
    private readonly preopens: Preopen[],
    private readonly stopFlag: Int32Array,
    private readonly instance: Instance,
  ) {}

  static start(loaded: LoadedModule, args: string[], env: Record<string, string>, preopens: Preopen[]): Container {
    const absolute = preopens.map((p) => ({ guestPath: p.guestPath, hostPath: resolve(p.hostPath) }));
    return Container.create(
      loaded,
      absolute,
      (stopFlag) =>
        new Instance(
          loaded,
          (blocker) => new WasiHost({ args, env, preopens: absolute, blocker }),
          isWasiExit,
          stopFlag,
        ),
    );
  }

  /**
   * Rebuilds a container from an image. `remap` replaces preopens by guest path; the others must
   * exist at the path they had on the source. `module` (checked against the image's digest) can
   * stand in for the module stored in the image.
   */
  static async restore(
    image: Image,
    remap: Preopen[],
    options: { module?: Uint8Array<ArrayBuffer> } = {},
  ): Promise<Container> {
    const moduleBytes = options.module ?? new Uint8Array(image.module);
    if (sha256(moduleBytes) !== image.manifest.module.digest) {
      throw new ContainerError(
        `wrong module: the image was taken from module ${image.manifest.module.digest.slice(0, 16)}…, this one is ${sha256(moduleBytes).slice(0, 16)}…`,
      );
    }
    const loaded = await compileModule(moduleBytes, 'image module');
    if (!loaded.manifest) throw new ContainerError('the image module is not migratable (not built with roam build)');
    const state = image.state() as ContainerState;
    const preopens = state.preopens.map((original) => {
      const replacement = remap.find((r) => r.guestPath === original.guestPath);
      const hostPath = resolve(replacement?.hostPath ?? original.hostPath);
      if (!existsSync(hostPath) || !statSync(hostPath).isDirectory()) {
        throw new ContainerError(
          `preopened directory ${original.guestPath}: ${hostPath} does not exist on this node (remap it with --dir HOST:${original.guestPath})`,
        );
      }
      return { guestPath: original.guestPath, hostPath };
    });
    for (const extra of remap) {
      if (!preopens.some((p) => p.guestPath === extra.guestPath))
        throw new ContainerError(
          `--dir ${extra.hostPath}:${extra.guestPath}: the image has no preopened directory ${extra.guestPath}`,
        );
    }
    return Container.create(loaded, preopens, (stopFlag) => {
      let instance: Instance;
      try {
        instance = new Instance(
          loaded,
          (blocker) => WasiHost.restore(state.host, { preopens, blocker }),
          isWasiExit,
          stopFlag,
        );
      } catch (error) {
        throw new ContainerError(`cannot restore the guest's files: ${(error as Error).message}`);
      }
      instance.restore(
        { memoryBytes: image.manifest.memory.bytes, globals: state.globals, engine: state.engine },
        (memory) => image.restoreMemory(memory),
      );
      return instance;
    });
  }

  private static create(
    loaded: LoadedModule,
    preopens: Preopen[],
    build: (stopFlag: Int32Array) => Instance,
  ): Container {
    const stopFlag = createStopFlag();
    return new Container(loaded, preopens, stopFlag, build(stopFlag));
  }

  /** Runs until the guest exits (its status) or is checkpointed without --leave-running (0). */
  async run(options: ContainerOptions = {}): Promise<number> {
    const control = options.name ? await ControlServer.listen(options.name, this.stopFlag) : undefined;
    options.onStart?.();
    try {
      for (;;) {
        const outcome = await this.instance.run();
        if (outcome.kind === 'exited') return outcome.exitCode;
        // Stopped: a control request is queued (or about to be: the flag goes up first).
        let keepRunning = true;
        do {
          const { id, request } = await control!.next();
          const reply = this.checkpoint(request);
          control!.reply(id, reply);
          if (reply.ok && !request.leaveRunning) keepRunning = false;
        } while (control!.hasPending());
        if (!keepRunning) return 0;
      }
    } finally {
      control?.close();
    }
  }

  private checkpoint(request: CheckpointRequest): ControlReply {
    const started = performance.now();
    try {
      const snapshot = this.instance.capture();
      const state: ContainerState = {
        preopens: this.preopens,
        engine: snapshot.engine,
        globals: snapshot.globals,
        host: snapshot.host as WasiHostState,
      };
      const manifest = writeImage(
        request.image,
        {
          source: { isa: hostIsa(), node: process.version, host: hostname() },
          module: this.loaded.bytes,
          moduleDigest: this.loaded.digest,
          memory: snapshot.memory,
          state,
        },
        { archive: request.archive, compression: 'deflate' },
      );
      return {
        ok: true,
        image: request.image,
        memoryBytes: manifest.memory.bytes,
        storedBytes: manifest.memory.storedBytes,
        pauseMs: performance.now() - started,
      };
    } catch (error) {
      return { ok: false, error: `checkpoint failed: ${(error as Error).message}` };
    }
  }
}
