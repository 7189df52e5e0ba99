import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildsRunPrograms, corpusPrograms, programs, wasmProgramsMissing } from '../test/programs/programs.js';
import { checkpointBench } from './checkpoint.js';
import { convergenceBench } from './convergence.js';
import { repoRoot } from './harness.js';
import { hotSetBench } from './hotset.js';
import { kvBench } from './kv.js';
import { migrationBench, vmMigrationBench } from './migration.js';
import { outboundBench } from './outbound.js';
import { programsBench } from './programs.js';
import { redisBench } from './redis.js';
import { restoreSpeedBench } from './restore-speed.js';
import { stopBench } from './stop.js';
import { threadsBench } from './threads.js';

/**
 * `npm run bench`: every figure side by side in one run, written to bench/results.md.
 * ROAM_BENCH_QUICK=1 uses small sizes (a smoke run).
 */
const quick = process.env.ROAM_BENCH_QUICK === '1';
/**
 * ROAM_BENCH_ONLY=corpus,stop,restore-speed,threads,kv,redis,outbound,migration,convergence,hotset,vm runs those sections
 * only and puts them into bench/results.md in place of the same sections, each marked with its date.
 */
const only = process.env.ROAM_BENCH_ONLY?.split(',');
/** ROAM_BENCH_ROUNDS=N: rounds of the program sections (3, quick 1). */
const programRounds = Number(process.env.ROAM_BENCH_ROUNDS ?? (quick ? 1 : 3));
const work = mkdtempSync(join(tmpdir(), 'roam-bench-'));
try {
  const sections: string[] = [];
  const wanted = (name: string) => !only || only.includes(name);
  if (wanted('programs')) {
    const names = quick ? ['minigzip', 'lua'] : ['sqlite', 'minigzip', 'xz', 'lua', 'jq'];
    sections.push(
      programsBench(
        join(work, 'programs'),
        programRounds,
        programs.filter((p) => names.includes(p.name)),
        {
          title: 'Real programs',
          workloads:
            "SQLite shell running 100k inserts and queries (`recipes/sqlite/workload.sh`), minigzip -6 on 24 MiB, xz -6 on 6 MiB, Lua `recipes/lua/bench.lua`, jq's upstream `jq.test`.",
        },
      ),
    );
  }
  if (wanted('corpus')) {
    // bc and discount build only where modules run as programs (binfmt_misc, scripts/setup).
    const missing = wasmProgramsMissing();
    const list = corpusPrograms.filter((p) => !(missing && buildsRunPrograms.has(p.name)));
    sections.push(
      programsBench(
        join(work, 'corpus'),
        programRounds,
        list,
        {
          title: 'The corpus (recipes/corpus/, unchanged Debian programs built with their own build systems)',
          workloads: `those of test/programs/programs.ts (\`corpusPrograms\`) made \`benchScale\` times larger than the tests' (generated deterministically: bzip2 -9 on 8 MiB, lz4 -9 on 12 MiB, zstd -12 on 12 MiB, mawk counting words in 6 MiB and summing 10M terms, bc -l computing constants to 849 digits and f(21) recursively, units converting 10000 quantities, figlet rendering 4000 banners, tree listing 5460 directories and 33000 files, indent on 1200 copies of a C file, cmark and discount on 200 copies of the README, CONTRIBUTING and posix.md, xmlwf on 400000 elements), so that Node start-up and compiling the module (about 0.4 s) weigh little${quick ? " (quick: the tests' sizes)" : ''}.${missing ? ` Left out: ${[...buildsRunPrograms].join(', ')} (${missing}).` : ''}`,
        },
        !quick,
      ),
    );
  }
  if (wanted('stop')) sections.push(await stopBench(join(work, 'stop'), quick ? 50 : 300));
  if (wanted('restore-speed'))
    sections.push(await restoreSpeedBench(join(work, 'restore-speed'), quick ? 5_000_000 : 20_000_000, 60));
  if (wanted('threads'))
    sections.push(await threadsBench(join(work, 'threads'), quick ? 20_000 : 200_000, quick ? 50 : 300));
  if (wanted('checkpoint'))
    sections.push(
      await checkpointBench(join(work, 'checkpoint'), quick ? [1, 16] : [1, 16, 256, 1024], quick ? 16 : 256),
    );
  if (wanted('migration'))
    sections.push(await migrationBench(join(work, 'migration'), quick ? [16, 64] : [16, 64, 256, 1024]));
  if (wanted('convergence')) sections.push(await convergenceBench(join(work, 'convergence'), quick ? 1 : 2));
  if (wanted('hotset')) sections.push(await hotSetBench(join(work, 'hotset'), quick ? 256 : 1024, 4, quick ? 1 : 3));
  if (wanted('vm'))
    sections.push(
      await vmMigrationBench(join(work, 'vm'), quick ? [16, 64] : [64, 256, 1024], quick ? [16] : [64, 256]),
    );
  if (wanted('kv')) sections.push(await kvBench(join(work, 'kv'), quick ? 20_000 : 100_000, quick ? 1 : 3));
  if (wanted('redis')) sections.push(await redisBench(join(work, 'redis'), quick ? 20_000 : 100_000, quick ? 1 : 3));
  if (wanted('outbound'))
    sections.push(await outboundBench(join(work, 'outbound'), quick ? 2000 : 20_000, quick ? 1 : 3));
  const header = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${process.arch}, ${(await import('node:os')).cpus()[0]?.model ?? 'unknown CPU'} (${(await import('node:os')).cpus().length} cores). Foreign ISAs run under qemu-user on the same machine.`,
    '',
  ];
  const out = join(repoRoot, 'bench', quick ? 'results-quick.md' : 'results.md');
  const fresh = `${header.join('\n')}${sections.join('\n\n')}\n`;
  if (only && !quick && existsSync(out)) {
    const note = `_Measured on ${new Date().toISOString().slice(0, 10)} by \`ROAM_BENCH_ONLY=${only.join(',')} npm run bench\` (Node ${process.version})._`;
    writeFileSync(out, replaceSections(readFileSync(out, 'utf8'), sections, note));
  } else {
    writeFileSync(out, fresh);
  }
  console.log(`wrote ${out}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/**
 * `document` with each of `sections` (markdown starting with a heading) in place of the section
 * of the same heading, or added at the end; `note` goes under each new heading.
 */
function replaceSections(document: string, sections: string[], note: string): string {
  const parts = document.split(/\n(?=#{2,3} )/).map((part) => part.trimEnd());
  for (const section of sections) {
    const [heading = '', ...body] = section.split('\n');
    const marked = [heading, '', note, ...body].join('\n');
    const at = parts.findIndex((part) => part.split('\n', 1)[0] === heading);
    if (at > 0) parts[at] = marked;
    else parts.push(marked);
  }
  return `${parts.join('\n\n')}\n`;
}
