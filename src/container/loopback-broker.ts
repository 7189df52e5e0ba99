import { Errno } from '../wasi/constants.js';
import { WasiError } from '../wasi/errors.js';
import { type Binding, LocalLoopback, type LoopbackListener } from '../wasi/loopback.js';
import { ContainerError } from './container.js';
import type { BrokerState } from './multi-process-state.js';
import type { BrokerReply, BrokerRequest, ListenerRef, LoopbackDelivery, PairRef } from './shared-loopback.js';
import { SharedPair } from './shared-pair.js';

/** The holder of a pair's side that the container's owner reads (the output of a process). */
export const OWNER = -1;

/**
 * The network a container's processes share, kept by the container's owner: one registry of port
 * claims and listeners (a LocalLoopback, so the rules are those of a one-process container), the
 * pairs of every in-container connection by id with the process holding each side, and the
 * deliveries of connections to listeners of another process. The bytes in flight are in the
 * pairs' shared memory, which the owner captures once every process is stopped.
 */
export class LoopbackBroker {
  private readonly registry = new LocalLoopback();
  private readonly bindings = new Map<string, { process: number; binding: Binding }>();
  private readonly listeners = new Map<string, LoopbackListener & { ref: ListenerRef }>();
  private readonly pairs = new Map<number, { pair: SharedPair; holders: [number, number] }>();
  private nextPair = 0;
  private readonly ended = new Set<number>();

  /** `deliver`: posts a connection to the thread of the process holding its listener. */
  constructor(
    private readonly deliver: (process: number, delivery: LoopbackDelivery) => void,
    state?: BrokerState,
  ) {
    for (const p of state?.pairs ?? []) {
      const holders = state?.holders[p.id];
      if (!holders) throw new ContainerError(`the container's state has no holders for stream pair ${p.id}`);
      this.pairs.set(p.id, { pair: SharedPair.restore(p), holders: [...holders] });
      this.nextPair = Math.max(this.nextPair, p.id + 1);
    }
  }

  /**
   * A pipe from `writer`'s stdout (or stderr) into `reader`'s stdin, or into the owner (OWNER): a
   * pair whose side 0 the writer holds and side 1 the reader (stream-pipe.ts); its id goes into
   * both ends' plumbing.
   */
  pipe(writer: number, reader: number): number {
    const unix = { family: 'unix', addr: '', port: 0 } as const;
    const pair = SharedPair.create(this.nextPair++, 'unix', [{ ...unix }, { ...unix }], new Set());
    this.pairs.set(pair.id, { pair, holders: [writer, reader] });
    return pair.id;
  }

  has(id: number): boolean {
    return this.pairs.has(id);
  }

  /** The owner's own view of a pair whose side 1 it holds (a process's output). */
  ownerSide(id: number): SharedPair {
    const entry = this.pairs.get(id);
    if (!entry || entry.holders[1] !== OWNER)
      throw new ContainerError(`stream pair ${id} is not an output the container's owner reads`);
    const { pair } = entry;
    return new SharedPair(pair.id, pair.family, pair.addresses, pair.buffer, new Set([1]));
  }

  /** The answer to one request of `process`'s guest thread. */
  answer(process: number, request: BrokerRequest): BrokerReply {
    try {
      return { ok: true, ...this.handle(process, request) };
    } catch (error) {
      if (error instanceof WasiError) return { ok: false, errno: error.errno };
      throw error;
    }
  }

  private handle(process: number, request: BrokerRequest): Omit<Extract<BrokerReply, { ok: true }>, 'ok'> {
    const key = (id: number) => `${process}:${id}`;
    switch (request.op) {
      case 'bind':
      case 'rebind': {
        const binding = request.binding;
        if (request.op === 'bind') this.registry.bind(binding);
        else this.registry.rebind(binding);
        this.bindings.set(key(request.id), { process, binding });
        return { port: binding.address.port };
      }
      case 'unbind': {
        const held = this.bindings.get(key(request.id));
        if (held) this.registry.unbind(held.binding);
        this.bindings.delete(key(request.id));
        return {};
      }
      case 'listen': {
        const ref = request.listener;
        const listener = { ...ref, ref, enqueue: () => undefined };
        this.listeners.set(key(ref.id), listener);
        this.registry.addListener(listener);
        return {};
      }
      case 'unlisten': {
        const listener = this.listeners.get(key(request.id));
        if (listener) this.registry.removeListener(listener);
        this.listeners.delete(key(request.id));
        return {};
      }
      case 'listenerFor': {
        const found = this.registry.listenerFor(request.to) as (LoopbackListener & { ref: ListenerRef }) | undefined;
        return found ? { listener: found.ref } : {};
      }
      case 'pair': {
        this.prune();
        const pair = SharedPair.create(this.nextPair++, request.family, request.addresses, new Set());
        const entry = { pair, holders: [process, process] as [number, number] };
        this.pairs.set(pair.id, entry);
        return { pair: this.ref(entry) };
      }
      case 'restoredPair': {
        const entry = this.pairs.get(request.id);
        if (!entry) throw new WasiError(Errno.BADF);
        return { pair: this.ref(entry) };
      }
      case 'enqueue': {
        const entry = this.pairs.get(request.pair);
        if (!entry) throw new WasiError(Errno.BADF);
        entry.holders[1] = request.listener.process;
        // A listener whose process ended meanwhile resets the connection.
        if (this.ended.has(request.listener.process)) entry.pair.release(1);
        else this.deliver(request.listener.process, { listener: request.listener.id, pair: this.ref(entry) });
        return {};
      }
    }
  }

  private ref(entry: { pair: SharedPair; holders: [number, number] }): PairRef {
    const { pair, holders } = entry;
    return { id: pair.id, family: pair.family, addresses: pair.addresses, buffer: pair.buffer, holders: [...holders] };
  }

  /** Pairs both of whose sides are closed are gone. */
  private prune(): void {
    for (const [id, { pair }] of this.pairs) if (pair.closed) this.pairs.delete(id);
  }

  /**
   * `process` ended: its port claims and listeners go, and its sides of connections close, so that
   * its peers read the end of the stream (or EPIPE) as when a process exits natively.
   */
  processEnded(process: number): void {
    this.ended.add(process);
    for (const [id, { process: holder, binding }] of this.bindings) {
      if (holder !== process) continue;
      this.registry.unbind(binding);
      this.bindings.delete(id);
    }
    for (const [id, listener] of this.listeners) {
      if (listener.ref.process !== process) continue;
      this.registry.removeListener(listener);
      this.listeners.delete(id);
    }
    for (const { pair, holders } of this.pairs.values()) {
      for (const side of [0, 1] as const) if (holders[side] === process) pair.release(side);
    }
    this.prune();
  }

  /** The pairs and who holds them, for a checkpoint of the whole container (every process stopped). */
  capture(): BrokerState {
    this.prune();
    const entries = [...this.pairs.values()];
    return {
      pairs: entries.map((e) => e.pair.capture()),
      holders: Object.fromEntries(entries.map((e) => [String(e.pair.id), [...e.holders]])),
    };
  }
}
