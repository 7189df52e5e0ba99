import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { sha256 } from '../build/manifest.js';
import { withTemporaryDirectory } from '../container/temporary-directory.js';
import { postCopyModes } from '../migrate/sender.js';
import { EpochFence } from '../migrate/session.js';
import { debugEnabled } from '../platform/errors.js';
import {
  dispatch,
  HttpError,
  hasToken,
  jsonBody,
  listenOn,
  parseBody,
  readBody,
  reply,
  serve,
} from '../platform/http.js';
import { aliasLoopback } from '../platform/loopback.js';
import {
  apiPrefix,
  type ContainerInfo,
  type ContainerStatus,
  type FenceReply,
  FenceRequestSchema,
  type IncomingReply,
  type IncomingRequest,
  IncomingRequestSchema,
  type MigrateLine,
  type MigrateRequest,
  MigrateRequestSchema,
  type StartRequest,
  StartRequestSchema,
  terminalStatuses,
} from './api.js';
import { AgentClient } from './client.js';
import { ContainerProcess } from './container-process.js';
import { type NodeFacts, nodeFacts, type PowerModel } from './facts.js';

export interface AgentOptions {
  name: string;
  /** Address to listen on (the data channel of incoming migrations uses it too). */
  host: string;
  port: number;
  token: string;
  stateDir: string;
  power: PowerModel;
  capabilities: NodeFacts['capabilities'];
  /** host:port of the cluster gateway's tunnel listener: containers with ports connect there. */
  gateway?: string;
  /** A fixed port for incoming migrations' data channel (one at a time), for nodes behind port forwarding. */
  dataPort?: number;
  /** Where sources reach that data channel, when not at the address the request came to (port forwarding). */
  dataAddress?: { host: string; port: number };
  /** Where this node reaches the cluster's loopback addresses (a VM reaches its host's 127.0.0.1 elsewhere). */
  hostAlias?: string;
  /** Its CPU is emulated though this process cannot tell (a full-system VM under TCG). */
  emulated?: boolean;
  /** Where the agent's structured log lines go, one JSON object each (roam agent: stdout, its log). */
  log?: (line: string) => void;
}

/** Which end of a migration an agent is, in its log lines. */
type MigrationSide = 'source' | 'destination';

interface Container {
  info: ContainerInfo;
  process?: ContainerProcess;
  logPath: string;
  /** This agent's own directory for the container (its log, the directories it brought along). */
  dir: string;
  /** Status unsettled: the node its migration went to (where it runs if `roam recover` learns it ran). */
  unsettledTo?: string;
  /** Incoming: the node it comes from (for the log). */
  source?: string;
  /**
   * The highest epoch this agent proposed for it: a destination that aborted an epoch never runs
   * it, so a migration after a rolled-back one proposes a higher one.
   */
  proposedEpoch?: number;
}

const maxModuleBytes = 512 << 20;

/**
 * The per-server daemon: hosts containers (one child process each), answers the HTTP API, and
 * moves containers to other agents. State lives in memory and under stateDir.
 */
export class Agent {
  private readonly containers = new Map<string, Container>();
  /**
   * Each container's epochs here, by ID: which were allowed to run, which were aborted. Kept when
   * the record goes (an aborted incoming one is forgotten), so that an aborted epoch stays aborted.
   */
  private readonly fences = new Map<string, EpochFence>();
  private readonly facts: NodeFacts;
  private server: Server | undefined;

  constructor(private readonly options: AgentOptions) {
    this.facts = nodeFacts(options.name, options.power, options.capabilities, options.emulated ?? false);
    mkdirSync(join(options.stateDir, 'modules'), { recursive: true });
    mkdirSync(join(options.stateDir, 'containers'), { recursive: true });
  }

  /** Listens; resolves with the URL it answers on. */
  async listen(): Promise<string> {
    this.server = createServer(serve((req, res) => this.handle(req, res)));
    return `http://${this.options.host}:${await listenOn(this.server, this.options.port, this.options.host)}`;
  }

  /**
   * One line of this agent's log for a migration phase: which container and epoch, which end, the
   * other node, and what happened (docs/fencing.md, "What the logs say"). `debug` lines (every
   * progress report) only with ROAM_DEBUG=1.
   */
  private migrationLog(
    container: Container,
    side: MigrationSide,
    phase: string,
    peer: string | undefined,
    fields: Record<string, unknown> = {},
    debug = false,
  ): void {
    if (debug && !debugEnabled()) return;
    const { id, epoch } = container.info;
    this.options.log?.(
      JSON.stringify({
        at: new Date().toISOString(),
        node: this.options.name,
        event: 'migration',
        side,
        phase,
        container: id,
        epoch,
        peer,
        ...fields,
      }),
    );
  }

  private reach(address: string): string {
    return aliasLoopback(address, this.options.hostAlias);
  }

  /** Stops every container and the server. */
  close(): void {
    for (const container of this.containers.values()) container.process?.kill();
    this.server?.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hasToken(req, this.options.token))
      throw new HttpError(401, 'missing or wrong token (send Authorization: Bearer TOKEN)');
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname.startsWith(apiPrefix) ? url.pathname.slice(apiPrefix.length) : undefined;
    const route = `${req.method} ${path}`;
    const handled = await dispatch(route, [
      ['GET /node', () => reply(res, 200, this.facts)],
      [
        'GET /containers',
        () =>
          reply(
            res,
            200,
            [...this.containers.values()].map((c) => this.describe(c)),
          ),
      ],
      [
        'POST /containers',
        async () => reply(res, 201, await this.start(parseBody(StartRequestSchema, await jsonBody(req)))),
      ],
      // The data channel listens where this request arrived: an address the source can reach.
      [
        'POST /migrations',
        async () =>
          reply(
            res,
            201,
            await this.incoming(
              parseBody(IncomingRequestSchema, await jsonBody(req)),
              req.socket.localAddress ?? this.options.host,
            ),
          ),
      ],
      [/^(HEAD|PUT) \/modules\/([0-9a-f]{64})$/, ([method, digest]) => this.module(req, res, method!, digest!)],
      [/^GET \/containers\/([^/]+)$/, ([id]) => reply(res, 200, this.describe(this.find(id!)))],
      [
        /^POST \/containers\/([0-9a-f]{12})\/fence$/,
        async ([id]) => reply(res, 200, this.abortEpoch(id!, parseBody(FenceRequestSchema, await jsonBody(req)).epoch)),
      ],
      [/^POST \/containers\/([^/]+)\/recover$/, async ([id]) => reply(res, 200, await this.recover(this.find(id!)))],
      [/^GET \/containers\/([^/]+)\/logs$/, ([id]) => this.logs(this.find(id!), url, res)],
      [/^POST \/containers\/([^/]+)\/stop$/, ([id]) => reply(res, 200, this.stop(this.find(id!)))],
      [
        /^POST \/containers\/([^/]+)\/migrate$/,
        async ([id]) => this.migrate(this.find(id!), parseBody(MigrateRequestSchema, await jsonBody(req)), res),
      ],
    ]);
    if (handled) return;
    throw new HttpError(404, `no such endpoint: ${req.method} ${url.pathname}`);
  }

  /** By ID, or by name: the live container of that name, else the newest that had it. */
  private find(encoded: string): Container {
    let id: string;
    try {
      id = decodeURIComponent(encoded);
    } catch {
      throw new HttpError(400, 'malformed container ID in the path');
    }
    const named = [...this.containers.values()]
      .filter((c) => c.info.name === id && c.info.status !== 'moved')
      .reverse();
    const container =
      this.containers.get(id) ?? named.find((c) => !terminalStatuses.includes(c.info.status)) ?? named[0];
    if (!container) throw new HttpError(404, `no container ${id} on node ${this.options.name}`);
    return container;
  }

  private fence(id: string): EpochFence {
    const fence = this.fences.get(id) ?? new EpochFence();
    this.fences.set(id, fence);
    return fence;
  }

  /**
   * A source lost our answer to its commit of `epoch`: tell it whether the guest of that epoch ran
   * here, or make sure it never will (the incoming container process, if any, goes).
   */
  private abortEpoch(id: string, epoch: number): FenceReply {
    const answer = this.fence(id).abort(epoch);
    const container = this.containers.get(id);
    if (container?.info.epoch === epoch)
      this.migrationLog(container, 'destination', answer === 'aborted' ? 'aborted' : 'fence-ran', container.source, {
        reason: 'the source lost our answer and asked the fence',
      });
    if (answer === 'aborted' && container?.info.epoch === epoch && container.info.status === 'incoming')
      container.process?.kill();
    return { answer };
  }

  /** Settles an unsettled container: its process asks the destination's agent again. */
  private async recover(container: Container): Promise<ContainerInfo> {
    const { info } = container;
    const child = container.process;
    if (info.status !== 'unsettled' || !child)
      throw new HttpError(409, `container ${info.id} is not unsettled (${info.status}): nothing to recover`);
    const settled = child.waitFor('settled');
    child.send({ op: 'recover' });
    const { outcome, reason } = await settled.catch((error: Error) => ({
      outcome: 'unsettled' as const,
      reason: error.message,
    }));
    this.migrationLog(container, 'source', `recover-${outcome}`, container.unsettledTo, { reason });
    if (outcome === 'resumed') Object.assign(info, { status: 'running', reason });
    else if (outcome === 'moved') {
      Object.assign(info, { status: 'moved', movedTo: container.unsettledTo, reason: undefined });
      rmSync(join(container.dir, 'dirs'), { recursive: true, force: true }); // as after a migration
    } else info.reason = reason;
    return this.describe(container);
  }

  private describe(container: Container): ContainerInfo {
    return { ...container.info, pid: container.process?.pid };
  }

  private modulePath(digest: string): string {
    return join(this.options.stateDir, 'modules', `${digest}.wasm`);
  }

  private async module(req: IncomingMessage, res: ServerResponse, method: string, digest: string): Promise<void> {
    const path = this.modulePath(digest);
    if (method === 'HEAD') {
      res.writeHead(existsSync(path) ? 200 : 404).end();
      return;
    }
    const bytes = await readBody(req, maxModuleBytes);
    if (sha256(bytes) !== digest) throw new HttpError(400, `module body does not match digest ${digest.slice(0, 16)}…`);
    writeFileSync(`${path}.partial`, bytes);
    renameSync(`${path}.partial`, path);
    reply(res, 201, { digest, bytes: bytes.length });
  }

  private newContainer(
    id: string,
    info: Omit<ContainerInfo, 'id' | 'node' | 'status' | 'dirs'>,
    dirs: ContainerInfo['dirs'],
  ): Container {
    const existing = this.containers.get(id);
    if (existing && !terminalStatuses.includes(existing.info.status))
      throw new HttpError(409, `container ${id} already runs on node ${this.options.name}`);
    const dir = join(this.options.stateDir, 'containers', id);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const container: Container = {
      info: { id, node: this.options.name, status: 'starting', dirs, ...info },
      logPath: join(dir, 'log'),
      dir,
    };
    writeFileSync(container.logPath, '');
    this.containers.set(id, container);
    return container;
  }

  /** The path of a module this node has (the request's schema checked the digest's form). */
  private requireModule(digest: string): string {
    const path = this.modulePath(digest);
    if (!existsSync(path))
      throw new HttpError(
        409,
        `module ${digest.slice(0, 16)}… is not on node ${this.options.name}: upload it first (PUT /v1/modules/{digest})`,
      );
    return path;
  }

  /** A request's guest ports (checked by its schema), which need this node to have a gateway. */
  private ports(ports: number[] = []): number[] {
    if (ports.length > 0 && !this.options.gateway)
      throw new HttpError(400, `node ${this.options.name} has no gateway (start its agent with --gateway) for ports`);
    return ports;
  }

  private async start(request: StartRequest): Promise<ContainerInfo> {
    const modulePath = this.requireModule(request.module);
    if (
      request.name !== undefined &&
      [...this.containers.values()].some(
        (c) => c.info.name === request.name && !terminalStatuses.includes(c.info.status),
      )
    ) {
      throw new HttpError(409, `a container named ${request.name} already runs on node ${this.options.name}`);
    }
    const ports = this.ports(request.ports);
    const dirs = request.dirs ?? [];
    for (const d of dirs) {
      if (!existsSync(d.hostPath) || !statSync(d.hostPath).isDirectory())
        throw new HttpError(400, `dir ${d.hostPath}: no such directory on node ${this.options.name}`);
    }
    const id = randomBytes(6).toString('hex');
    const container = this.newContainer(
      id,
      {
        name: request.name,
        moduleDigest: request.module,
        args: request.args,
        createdAt: new Date().toISOString(),
        history: [],
        ports,
        epoch: 1,
      },
      dirs,
    );
    // Through the gateway come the clients of published ports and go the guest's outgoing connections.
    const network = this.options.gateway
      ? {
          gateway: this.options.gateway,
          container: id,
          token: this.options.token,
          epoch: 1,
          ports,
          allow: request.allow,
        }
      : undefined;
    const sandbox = withTemporaryDirectory(dirs, request.env ?? {}, () => join(container.dir, 'tmp'));
    container.info.dirs = sandbox.preopens;
    const child = new ContainerProcess(
      {
        kind: 'start',
        id,
        modulePath,
        logPath: container.logPath,
        listenHost: this.options.host,
        args: request.args,
        env: sandbox.env,
        preopens: sandbox.preopens,
        network,
      },
      { eagerCompile: !this.facts.emulated },
    );
    this.attach(container, child);
    const started = await child
      .waitFor('running', 'exited', 'failed')
      .catch((error: Error) => ({ event: 'failed' as const, message: error.message }));
    if (started.event === 'failed') throw new HttpError(400, started.message);
    return this.describe(container);
  }

  private async incoming(request: IncomingRequest, host: string): Promise<IncomingReply> {
    const ports = this.ports(request.ports);
    const modulePath = this.requireModule(request.module);
    const { epoch } = request;
    if (epoch === undefined)
      throw new HttpError(409, `the source sent no epoch: update roam on it to migrate to node ${this.options.name}`);
    if (this.fence(request.id).isAborted(epoch))
      throw new HttpError(409, `epoch ${epoch} of container ${request.id} was aborted here: it never runs here`);
    if (this.options.dataPort && [...this.containers.values()].some((c) => c.info.status === 'incoming')) {
      throw new HttpError(
        409,
        `node ${this.options.name} receives another container on its data port ${this.options.dataPort}: try again when it is done`,
      );
    }
    const container = this.newContainer(
      request.id,
      {
        name: request.name,
        moduleDigest: request.module,
        args: request.args,
        createdAt: request.createdAt,
        history: request.history,
        ports,
        epoch,
      },
      [],
    );
    container.info.status = 'incoming';
    container.source = request.history.at(-1);
    container.info.dirs = request.guestPaths.map((guestPath, i) => ({
      guestPath,
      hostPath: join(container.dir, 'dirs', String(i)),
    }));
    const ticket = randomBytes(24).toString('hex');
    const child = new ContainerProcess(
      {
        kind: 'incoming',
        id: request.id,
        modulePath,
        logPath: container.logPath,
        listenHost: host,
        listenPort: this.options.dataPort ?? 0,
        ticket,
        epoch,
        directories: container.info.dirs.map((d) => d.hostPath),
        gateway: this.options.gateway,
      },
      { eagerCompile: !this.facts.emulated },
    );
    this.attach(container, child);
    const ready = await child
      .waitFor('listening', 'failed')
      .catch((error: Error) => ({ event: 'failed' as const, message: error.message }));
    if (ready.event === 'failed') throw new HttpError(500, `cannot receive the container: ${ready.message}`);
    this.migrationLog(container, 'destination', 'prepared', container.source);
    return { ...(this.options.dataAddress ?? { host: host.replace(/^::ffff:/, ''), port: ready.port }), ticket };
  }

  /** Follows a container process's life in its record. */
  private attach(container: Container, child: ContainerProcess): void {
    container.process = child;
    // An incoming container exists here only once it ran here (the migration committed).
    let ranHere = container.info.status !== 'incoming';
    child.on((event) => {
      if (event.event === 'commit') {
        // Whichever comes first, this or the source's fence, decides (EpochFence).
        const granted = this.fence(container.info.id).commit(event.epoch);
        this.migrationLog(container, 'destination', granted ? 'commit' : 'commit-refused', container.source);
        child.send({ op: 'commit-answer', epoch: event.epoch, granted });
      }
      if (event.event === 'running') {
        if (!ranHere) this.migrationLog(container, 'destination', 'running', container.source);
        ranHere = true;
        container.info.status = 'running';
      }
      if (event.event === 'exited') Object.assign(container.info, { status: 'exited', exitCode: event.exitCode });
      if (event.event === 'failed') {
        // An incoming container that failed never ran here: gone at once, so that a source asking
        // whether it runs here never mistakes this record for a committed one.
        if (!ranHere) {
          this.migrationLog(container, 'destination', 'rolled-back', container.source, { reason: event.message });
          this.forget(container);
        } else {
          // Ran here and failed; after a migration in post-copy, the source was lost before every page arrived.
          if (container.source)
            this.migrationLog(container, 'destination', 'failed', container.source, { reason: event.message });
          Object.assign(container.info, { status: 'failed', error: event.message });
        }
      }
    });
    void child.gone.then(({ code, signal }) => {
      if (container.process === child) container.process = undefined;
      const status = container.info.status;
      if (!ranHere) {
        // Still here: it ended without a word (stopped by the source after its failure, or killed).
        if (this.containers.get(container.info.id) === container)
          this.migrationLog(container, 'destination', 'rolled-back', container.source, {
            reason: `the incoming container process ended (${signal ?? `exit code ${code}`}) before the commit`,
          });
        this.forget(container);
      } else if (!terminalStatuses.includes(status)) {
        Object.assign(container.info, {
          status: 'failed',
          error: `the container process ended (${signal ?? `exit code ${code}`})`,
        });
      }
    });
  }

  /** A migration that never committed: as if it had never come. */
  private forget(container: Container): void {
    if (this.containers.get(container.info.id) !== container) return;
    this.containers.delete(container.info.id);
    rmSync(container.dir, { recursive: true, force: true });
  }

  private stop(container: Container): ContainerInfo {
    if (terminalStatuses.includes(container.info.status))
      throw new HttpError(409, `container ${container.info.id} is not running (${container.info.status})`);
    // An incoming one that is stopped never existed here (see attach).
    if (container.info.status !== 'incoming') container.info.status = 'stopped';
    container.process?.kill();
    return this.describe(container);
  }

  private logs(container: Container, url: URL, res: ServerResponse): void {
    let offset = Number(url.searchParams.get('offset') ?? 0);
    if (!Number.isInteger(offset) || offset < 0) throw new HttpError(400, 'offset: expected a byte offset');
    const follow = url.searchParams.get('follow') === '1';
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      ...(follow ? { trailer: 'X-Roam-Moved-To' } : {}),
    });
    // The head goes now, even with no output yet: a client waits for it only so long.
    res.flushHeaders();
    const pump = () => {
      const fd = openSync(container.logPath, 'r');
      try {
        const chunk = Buffer.allocUnsafe(1 << 16);
        for (;;) {
          const n = readSync(fd, chunk, 0, chunk.length, offset);
          if (n === 0) break;
          res.write(Buffer.from(chunk.subarray(0, n)));
          offset += n;
        }
      } finally {
        closeSync(fd);
      }
    };
    pump();
    if (!follow) {
      res.end();
      return;
    }
    const timer = setInterval(() => {
      const gone = this.containers.get(container.info.id) !== container;
      const ended = gone || terminalStatuses.includes(container.info.status);
      try {
        pump();
      } catch {
        // the log went with a container that never arrived: nothing more to say
      }
      if (!ended) return;
      clearInterval(timer);
      if (container.info.movedTo) res.addTrailers({ 'X-Roam-Moved-To': container.info.movedTo });
      res.end();
    }, 100);
    res.on('close', () => clearInterval(timer));
  }

  private async migrate(container: Container, request: MigrateRequest, res: ServerResponse): Promise<void> {
    const { info } = container;
    if (info.status !== 'running' || !container.process)
      throw new HttpError(409, `container ${info.id} is not running (${info.status})`);
    if (request.to.name === this.options.name)
      throw new HttpError(400, `container ${info.id} already runs on node ${this.options.name}`);
    const mode = request.mode ?? 'auto';
    const token = request.to.token ?? this.options.token;
    const destinationUrl = this.reach(request.to.url);
    const destination = new AgentClient(destinationUrl, token);
    const child = container.process;
    const epoch = Math.max(info.epoch ?? 1, container.proposedEpoch ?? 0) + 1;
    container.proposedEpoch = epoch;
    // Before anything is streamed, so that errors are plain HTTP errors.
    let target: IncomingReply;
    let destinationLazyRestore = false;
    try {
      if (mode === 'auto' || postCopyModes.includes(mode) || request.postCopyFallback) {
        const { capabilities } = await destination.node();
        destinationLazyRestore = capabilities.postCopy === true;
        if (!destinationLazyRestore && postCopyModes.includes(mode)) {
          throw new HttpError(
            409,
            `node ${request.to.name} cannot receive ${mode}: ${capabilities.postCopyNote ?? 'no userfaultfd lazy restore there'}; use --mode pre-copy`,
          );
        }
      }
      const modulePath = this.modulePath(info.moduleDigest);
      if (!(await destination.hasModule(info.moduleDigest))) {
        await destination.putModule(info.moduleDigest, readFileSync(modulePath));
      }
      target = await destination.prepareIncoming({
        id: info.id,
        name: info.name,
        module: info.moduleDigest,
        args: info.args,
        guestPaths: info.dirs.map((d) => d.guestPath),
        createdAt: info.createdAt,
        history: [...info.history, this.options.name],
        ports: info.ports,
        epoch,
      });
    } catch (error) {
      this.migrationLog(container, 'source', 'refused', request.to.name, {
        to: epoch,
        reason: (error as Error).message,
      });
      if (error instanceof HttpError) throw error;
      throw new HttpError(502, `destination ${request.to.name}: ${(error as Error).message}`, { cause: error });
    }
    if (info.status !== 'running' || container.process !== child) {
      await destination.stop(info.id).catch(() => undefined);
      throw new HttpError(409, `container ${info.id} ended before the migration began (${info.status})`);
    }
    info.status = 'migrating';
    info.reason = undefined;
    this.migrationLog(container, 'source', 'started', request.to.name, { to: epoch, mode });
    let phase: string | undefined;
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const line = (value: MigrateLine) => res.write(`${JSON.stringify(value)}\n`);
    // Failed before the commit, or rolled back: the destination's copy must go. Unsettled: it may
    // run there, and only the fence (roam recover) may tell.
    const failed = await new Promise<boolean>((settle) => {
      let settled = false;
      const resolve = (failure: boolean) => {
        if (!settled) settle(failure);
        settled = true;
      };
      child.on((event) => {
        if (event.event === 'progress') {
          const { progress } = event;
          const fields = { to: epoch, round: progress.round, sentBytes: progress.sentBytes };
          this.migrationLog(container, 'source', progress.phase, request.to.name, fields, progress.phase === phase);
          phase = progress.phase;
          line({ progress });
          return false;
        }
        if (event.event === 'migrated') {
          this.migrationLog(container, 'source', 'moved', request.to.name, {
            to: epoch,
            mode: event.report.mode,
            downtimeMs: event.report.downtimeMs,
          });
          Object.assign(info, { status: 'moved', movedTo: request.to.name });
          line({ result: { ...event.report, from: this.options.name, to: request.to.name } });
          resolve(false);
        } else if (event.event === 'migration-failed') {
          this.migrationLog(container, 'source', 'rolled-back', request.to.name, { to: epoch, reason: event.message });
          if (info.status === 'migrating') Object.assign(info, { status: 'running', reason: event.message });
          line({ error: event.message });
          resolve(true);
        } else if (event.event === 'migration-unsettled') {
          this.migrationLog(container, 'source', 'unsettled', request.to.name, { to: epoch, reason: event.reason });
          Object.assign(info, { status: 'unsettled', reason: event.reason });
          container.unsettledTo = request.to.name;
          line({ error: `the container is stopped on node ${this.options.name}, unsettled: ${event.reason}` });
          resolve(false);
        } else if (event.event === 'exited' || event.event === 'failed') {
          line({ error: `the container ended during the migration (${info.status})` });
          resolve(true);
        } else {
          return false;
        }
        return true;
      });
      void child.gone.then(() => {
        if (!settled) line({ error: 'the container process ended during the migration' });
        resolve(true);
      });
      child.send({
        op: 'migrate-out',
        target: { ...target, host: this.reach(target.host), epoch },
        mode,
        maxRounds: request.maxRounds,
        dirtyTracking: request.dirtyTracking,
        hotFirst: request.hotFirst,
        postCopyFallback: request.postCopyFallback,
        destinationLazyRestore,
        destinationAgent: { url: destinationUrl, token },
      });
    });
    // Not committed: the destination's half-built copy must not linger (nor ever run).
    if (failed) await destination.stop(info.id).catch(() => undefined);
    res.end();
    if ((info.status as ContainerStatus) === 'moved') {
      // Keep the log for followers; drop the directories it brought along (the destination has them).
      rmSync(join(container.dir, 'dirs'), { recursive: true, force: true });
    }
  }
}
