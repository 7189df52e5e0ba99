import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, type TestContext, test } from 'node:test';
import { freePort } from '../cluster/cluster.js';
import { repoRoot, roam, skipIfMissing, sleep, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir('roam-kv-');
const kvDir = join(repoRoot, 'apps', 'kv');
const sources = readdirSync(kvDir)
  .filter((f) => f.endsWith('.c'))
  .sort()
  .map((f) => join(kvDir, f));
const available = (tool: string) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
const haveGcc = available('gcc');
const haveRedisCli = available('redis-cli');
const haveBenchmark = available('redis-benchmark');
const haveSocketActivate = available('systemd-socket-activate');
const noGcc = !haveGcc && 'gcc is not installed: the native kv server cannot be built';
const noRedisCli =
  (!haveGcc && noGcc) ||
  (!haveRedisCli && 'redis-cli is not installed: apt-get install redis-tools (scripts/setup installs it)');
const noBenchmark =
  (!haveGcc && noGcc) ||
  (!haveBenchmark && 'redis-benchmark is not installed: apt-get install redis-tools (scripts/setup installs it)');

interface Server {
  child: ChildProcessByStdio<null, Readable, Readable>;
  port: number;
  exited: Promise<number | string>;
  output: () => string;
}

/** Starts `command`; resolves once stdout or stderr matches `ready` (its group 1, if any, is the port). */
function startServer(command: string, args: string[], ready: RegExp, env?: NodeJS.ProcessEnv): Promise<Server> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let output = '';
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not start:\n${output}`));
    }, 15_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = ready.exec(output);
      if (!m) return;
      clearTimeout(timer);
      resolve({ child, port: Number(m[1] ?? 0), exited, output: () => output });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    void exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${status}) before it was ready:\n${output}`));
    });
  });
}

/** SIGTERM (the server frees everything and exits 0), SIGKILL if that takes too long. */
async function stopServer(server: Server | undefined): Promise<number | string | undefined> {
  if (!server) return undefined;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
  const timeout = sleep(5000).then(() => 'timeout' as const);
  const status = await Promise.race([server.exited, timeout]);
  if (status === 'timeout') {
    server.child.kill('SIGKILL');
    return server.exited;
  }
  return status;
}

/** A RESP multibulk request, as redis-cli and redis-benchmark send. */
function resp(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(a);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Sends `request` in one write; resolves with the first `expected` bytes of reply, or all of it once the server closes. */
function exchange(port: number, request: Buffer, expected = Infinity): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply after 20 s (${size} of ${expected} bytes)`));
    }, 20_000);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size >= expected) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ reply: Buffer.concat(chunks), closed: false });
      }
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks), closed: true });
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const binary = join(dir, 'kv');
let build = { status: null as number | null, stderr: '' };
let server: Server | undefined;

before(async () => {
  if (!haveGcc) return;
  const gcc = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', ...sources, '-o', binary], { encoding: 'utf8' });
  build = { status: gcc.status, stderr: gcc.stderr };
  if (gcc.status === 0)
    server = await startServer(binary, ['--port', '0'], /ready to accept connections on \S+ port (\d+)/);
});

after(async () => {
  try {
    await stopServer(server);
  } finally {
    cleanup();
  }
});

test('gcc -O2 -Wall -Wextra builds the native server without warnings', { skip: skipIfMissing(noGcc) }, () => {
  assert.equal(build.status, 0, build.stderr);
  assert.equal(build.stderr, '');
  assert.ok(server && server.port > 0);
});

/** redis-cli's output for one command (no TTY: raw replies, one per line; nil and empty arrays print an empty line). */
function cli(...args: string[]): string {
  const run = spawnSync('redis-cli', ['-p', String(server!.port), ...args], { encoding: 'utf8', timeout: 20_000 });
  if (run.error) throw run.error;
  return run.stdout;
}

const wrongType = /^WRONGTYPE Operation against a key holding the wrong kind of value\n/;

test('redis-cli: strings, counters, expiry, keys, lists, info and errors answer as Redis does', {
  skip: skipIfMissing(noRedisCli),
}, async () => {
  assert.equal(cli('FLUSHALL'), 'OK\n');
  assert.equal(cli('PING'), 'PONG\n');
  assert.equal(cli('PING', 'hi there'), 'hi there\n');
  assert.equal(cli('ECHO', 'binary\tsafe'), 'binary\tsafe\n');

  assert.equal(cli('SET', 'greeting', 'hello world'), 'OK\n');
  assert.equal(cli('GET', 'greeting'), 'hello world\n');
  assert.equal(cli('GET', 'missing'), '\n');
  assert.equal(cli('SET', 'greeting', 'other', 'NX'), '\n');
  assert.equal(cli('SET', 'fresh', 'v', 'XX'), '\n');
  assert.equal(cli('SET', 'greeting', 'hello again', 'XX', 'GET'), 'hello world\n');
  assert.equal(cli('DEL', 'greeting', 'missing'), '1\n');
  assert.equal(cli('EXISTS', 'greeting'), '0\n');

  assert.equal(cli('INCR', 'counter'), '1\n');
  assert.equal(cli('INCRBY', 'counter', '41'), '42\n');
  assert.equal(cli('DECR', 'counter'), '41\n');
  assert.equal(cli('SET', 'word', 'abc'), 'OK\n');
  assert.match(cli('INCR', 'word'), /^ERR value is not an integer or out of range\n/);
  assert.equal(cli('SET', 'max', '9223372036854775807'), 'OK\n');
  assert.match(cli('INCR', 'max'), /^ERR increment or decrement would overflow\n/);

  assert.equal(cli('SET', 'session', 'data'), 'OK\n');
  assert.equal(cli('TTL', 'session'), '-1\n');
  assert.equal(cli('EXPIRE', 'session', '100'), '1\n');
  assert.match(cli('TTL', 'session'), /^(100|99)\n$/);
  const pttl = Number(cli('PTTL', 'session'));
  assert.ok(pttl > 98_000 && pttl <= 100_000, `PTTL ${pttl}`);
  assert.equal(cli('PERSIST', 'session'), '1\n');
  assert.equal(cli('TTL', 'session'), '-1\n');
  assert.equal(cli('TTL', 'missing'), '-2\n');
  assert.equal(cli('EXPIRE', 'missing', '10'), '0\n');
  assert.equal(cli('SET', 'brief', 'v', 'PX', '60'), 'OK\n');
  assert.equal(cli('SET', 'briefer', 'v', 'EX', '1'), 'OK\n');
  assert.equal(cli('PEXPIRE', 'briefer', '40'), '1\n');
  await sleep(150);
  assert.equal(cli('GET', 'brief'), '\n', 'an expired key is gone at once');
  assert.equal(cli('EXISTS', 'brief', 'briefer'), '0\n');
  assert.match(cli('SET', 'k', 'v', 'EX', '0'), /^ERR invalid expire time in 'set' command\n/);
  assert.match(cli('SET', 'k', 'v', 'EX'), /^ERR syntax error\n/);

  assert.equal(cli('MSET', 'user:1', 'ann', 'user:2', 'bob', 'user:10', 'cy'), 'OK\n');
  assert.equal(cli('MGET', 'user:1', 'nobody', 'user:10'), 'ann\n\ncy\n');
  const sorted = (s: string) => s.split('\n').filter(Boolean).sort();
  assert.deepEqual(sorted(cli('KEYS', 'user:*')), ['user:1', 'user:10', 'user:2']);
  assert.deepEqual(sorted(cli('KEYS', 'user:?')), ['user:1', 'user:2']);
  assert.deepEqual(sorted(cli('KEYS', 'user:[^2]*')), ['user:1', 'user:10']);
  assert.equal(cli('KEYS', 'nothing*'), '\n', 'an empty array');
  assert.match(cli('MSET', 'a', '1', 'b'), /^ERR wrong number of arguments for 'mset' command\n/);

  assert.equal(cli('RPUSH', 'list', 'b', 'c'), '2\n');
  assert.equal(cli('LPUSH', 'list', 'a', 'z'), '4\n');
  assert.equal(cli('LRANGE', 'list', '0', '-1'), 'z\na\nb\nc\n');
  assert.equal(cli('LRANGE', 'list', '-2', '-1'), 'b\nc\n');
  assert.equal(cli('LRANGE', 'list', '10', '20'), '\n');
  assert.equal(cli('LPOP', 'list'), 'z\n');
  assert.equal(cli('RPOP', 'list'), 'c\n');
  assert.equal(cli('LLEN', 'list'), '2\n');
  assert.equal(cli('LPOP', 'list', '5'), 'a\nb\n');
  assert.equal(cli('EXISTS', 'list'), '0\n', 'an emptied list is deleted');

  assert.equal(cli('RPUSH', 'queue', 'x'), '1\n');
  assert.match(cli('GET', 'queue'), wrongType);
  assert.match(cli('INCR', 'queue'), wrongType);
  assert.match(cli('LPUSH', 'user:1', 'x'), wrongType);
  assert.match(cli('LRANGE', 'user:1', '0', '-1'), wrongType);
  assert.equal(cli('SET', 'queue', 'now a string'), 'OK\n', 'SET overwrites any type');

  assert.match(cli('NOSUCHCMD', 'a', 'b'), /^ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' \n/);
  assert.match(cli('GET'), /^ERR wrong number of arguments for 'get' command\n/);
  assert.equal(cli('SELECT', '0'), 'OK\n');
  assert.match(cli('SELECT', '1'), /^ERR DB index is out of range\n/);
  assert.equal(cli('CONFIG', 'GET', 'save'), 'save\n\n');
  assert.equal(cli('CONFIG', 'GET', 'appendonly'), 'appendonly\nno\n');
  assert.equal(cli('CLIENT', 'SETNAME', 'tester'), 'OK\n');
  assert.equal(cli('COMMAND', 'DOCS'), '\n');

  const dbsize = Number(cli('DBSIZE'));
  assert.equal(cli('EXPIRE', 'user:10', '1000'), '1\n');
  const info = cli('INFO');
  assert.match(info, /^# Server\r\nredis_version:7\.\d+\.\d+\r\n/);
  assert.match(info, /\r\nprocess_id:\d+\r\n/);
  assert.match(info, /\r\nconnected_clients:\d+\r\n/);
  assert.match(info, new RegExp(`# Keyspace\\r\\ndb0:keys=${dbsize},expires=1,avg_ttl=\\d+\\r\\n`));
  assert.doesNotMatch(cli('INFO', 'keyspace'), /# Server/);
  assert.equal(cli('FLUSHDB'), 'OK\n');
  assert.equal(cli('DBSIZE'), '0\n');
});

/** Runs redis-benchmark; returns requests per second by test name after checking it printed no error. */
function benchmark(args: string[]): Record<string, number> {
  const run = spawnSync('redis-benchmark', ['-p', String(server!.port), ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, output);
  assert.doesNotMatch(output, /error|closed|refused/i, output);
  const rates: Record<string, number> = {};
  for (const m of output.matchAll(/(\w+): ([\d.]+) requests per second/g)) rates[m[1]!] = Number(m[2]);
  return rates;
}

test('redis-benchmark -t get,set (plain and -P 16) completes without errors', {
  skip: skipIfMissing(noBenchmark),
  timeout: 240_000,
}, (t: TestContext) => {
  for (const pipeline of [[], ['-P', '16']]) {
    const rates = benchmark(['-t', 'get,set', '-n', '20000', '-c', '50', '-q', ...pipeline]);
    assert.ok(rates.SET! > 0 && rates.GET! > 0, JSON.stringify(rates));
    t.diagnostic(`${pipeline.join(' ') || 'no pipelining'}: SET ${rates.SET} GET ${rates.GET} requests/s`);
  }
});

test('a raw client pipelining 1000 SETs in one write gets 1000 +OK', { skip: skipIfMissing(noGcc) }, async () => {
  const sets = Buffer.concat(Array.from({ length: 1000 }, (_, i) => resp('SET', `pipe:${i}`, `value-${i}`)));
  const { reply } = await exchange(server!.port, sets, 5000);
  assert.equal(reply.toString(), '+OK\r\n'.repeat(1000));
  const get = await exchange(server!.port, Buffer.concat([resp('GET', 'pipe:999'), Buffer.from('PING\r\n')]), 21);
  assert.equal(get.reply.toString(), '$9\r\nvalue-999\r\n+PONG\r\n');
});

test('big values round-trip; protocol errors get -ERR and the connection closes', {
  skip: skipIfMissing(noGcc),
}, async () => {
  const value = Buffer.alloc(8 * 1024 * 1024, 'v');
  value.write('start', 0);
  value.write('end', value.length - 3);
  const header = `$${value.length}\r\n`;
  const big = await exchange(
    server!.port,
    Buffer.concat([resp('SET', 'big', value), resp('GET', 'big')]),
    5 + header.length + value.length + 2,
  );
  assert.equal(big.reply.subarray(0, 5 + header.length).toString(), `+OK\r\n${header}`);
  assert.ok(big.reply.subarray(5 + header.length, 5 + header.length + value.length).equals(value));

  for (const [request, error] of [
    ['*1\r\nPING\r\n', "-ERR Protocol error: expected '$', got 'P'\r\n"],
    ['*2\r\n$3\r\nGET\r\n$-7\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
    [`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${512 * 1024 * 1024 + 1}\r\n`, '-ERR Protocol error: invalid bulk length\r\n'],
    ['*x\r\n', '-ERR Protocol error: invalid multibulk length\r\n'],
    ['ECHO "unbalanced\r\n', '-ERR Protocol error: unbalanced quotes in request\r\n'],
  ]) {
    const { reply, closed } = await exchange(server!.port, Buffer.from(request!));
    assert.equal(reply.toString(), error);
    assert.ok(closed, `${JSON.stringify(request)} closes the connection`);
  }
  const quit = await exchange(server!.port, Buffer.from('PING\r\nQUIT\r\nPING\r\n'));
  assert.deepEqual([quit.reply.toString(), quit.closed], ['+PONG\r\n+OK\r\n', true]);
});

test('LISTEN_FDS: the server adopts listening sockets it is handed (the WASI code path, natively)', {
  skip: skipIfMissing(noGcc || (!haveSocketActivate && 'systemd-socket-activate is not installed')),
}, async () => {
  const port = await freePort();
  const activated = await startServer('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, binary], /Listening on/);
  try {
    // systemd-socket-activate execs kv on the first connection, which waits in the backlog meanwhile.
    const { reply } = await exchange(port, Buffer.concat([resp('SET', 'a', '1'), resp('GET', 'a')]), 12);
    assert.equal(reply.toString(), '+OK\r\n$1\r\n1\r\n');
    assert.match(activated.output(), /kv: ready, serving 1 listening socket from LISTEN_FDS/);
    const shutdown = await exchange(port, resp('SHUTDOWN'));
    assert.deepEqual([shutdown.reply.toString(), shutdown.closed], ['', true]);
    assert.equal(await activated.exited, 0);
  } finally {
    await stopServer(activated);
  }
  const missing = spawnSync(binary, [], { env: { ...process.env, LISTEN_FDS: '1' }, encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /LISTEN_FDS=1 but fd 3 is not a stream socket/);
});

test('roam cc -O2 apps/kv/*.c builds a WASI module that takes its sockets from the host', () => {
  const wasm = join(dir, 'kv.wasm');
  const cc = roam(['cc', '-O2', ...sources, '-o', wasm]);
  assert.equal(cc.status, 0, cc.stderr);
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasm))).map((i) => i.name);
  for (const name of [
    'sock_accept',
    'sock_recv',
    'sock_send',
    'poll_oneoff',
    'fd_fdstat_set_flags',
    'clock_time_get',
  ]) {
    assert.ok(imports.includes(name), `kv.wasm imports ${name}`);
  }
});
