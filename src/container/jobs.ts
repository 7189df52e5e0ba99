import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { loadModule } from '../engine/module.js';
import { Image } from '../image/image.js';
import { hostIsa } from '../platform/isa.js';
import type { Preopen } from '../wasi/sandbox.js';
import { Container, ContainerError } from './container.js';

/** What `roam run` and `roam restore` ask a container thread to do (plain data: it crosses threads). */
export type ContainerJob =
  | { kind: 'start'; module: string; args: string[]; env: Record<string, string>; preopens: Preopen[]; name?: string }
  | {
      kind: 'restore';
      image: string;
      remap: Preopen[];
      name?: string;
      module?: string;
      timings?: boolean;
      processStart: number;
    };

/** Runs a job on the current thread; resolves with the guest's exit status. */
export async function runJob(job: ContainerJob): Promise<number> {
  if (job.kind === 'start') {
    const loaded = await loadModule(job.module);
    if (job.name && !loaded.manifest)
      throw new ContainerError(`${job.module} is a plain module: build it with roam build to checkpoint it`);
    const container = Container.start(loaded, job.args, job.env, job.preopens);
    return container.run({ name: job.name });
  }
  const image = Image.open(job.image);
  const verified = sinceProcessStart(job.processStart);
  const module = job.module ? new Uint8Array(readFileSync(job.module)) : undefined;
  const container = await Container.restore(image, job.remap, { module });
  const restored = sinceProcessStart(job.processStart);
  const onStart = () => {
    if (!job.timings) return;
    const ms = (t: number) => `${t.toFixed(1)} ms`;
    const mib = (image.manifest.memory.bytes / 1048576).toFixed(0);
    process.stderr.write(
      `roam restore: image verified at ${ms(verified)}, module and state loaded at ${ms(restored)}, first instruction at ${ms(sinceProcessStart(job.processStart))} (${hostIsa()}, ${mib} MiB)\n`,
    );
  };
  return container.run({ name: job.name, onStart });
}

/** Milliseconds since the process started (workers have their own performance clock origin). */
function sinceProcessStart(processStart: number): number {
  return performance.timeOrigin + performance.now() - processStart;
}
