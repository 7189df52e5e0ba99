import { WasiError } from '../wasi/errors.js';
import type {
  Address,
  Binding,
  Family,
  Loopback,
  LoopbackListener,
  LoopbackState,
  StreamPair,
} from '../wasi/loopback.js';
import type { OwnerChannel } from './owner-channel.js';
import { SharedPair } from './shared-pair.js';

/**
 * The network of one process of a container of several, on its guest thread: what the container
 * shares (port claims, listeners, which pair has which id) is asked of the owner
 * (loopback-broker.ts) synchronously; the bytes of each connection move through its SharedPair
 * without the owner. A connection to a listener of another process reaches it as a delivery,
 * posted by the owner to that process's thread.
 */

/** A listener as the owner knows it: which process holds it, under which id. */
export interface ListenerRef {
  process: number;
  id: number;
  address: Address;
  v6only: boolean;
  bound: boolean;
}

/** A pair as it crosses threads: its shared memory and who it connects. */
export interface PairRef {
  id: number;
  family: Family;
  addresses: [Address, Address];
  buffer: SharedArrayBuffer;
  /** The process holding each side. */
  holders: [number, number];
}

export type BrokerRequest =
  | { op: 'bind'; id: number; binding: Binding }
  | { op: 'rebind'; id: number; binding: Binding }
  | { op: 'unbind'; id: number }
  | { op: 'listen'; listener: ListenerRef }
  | { op: 'unlisten'; id: number }
  | { op: 'listenerFor'; to: Address }
  | { op: 'pair'; family: Family; addresses: [Address, Address] }
  | { op: 'restoredPair'; id: number }
  | { op: 'enqueue'; listener: ListenerRef; pair: number };

export type BrokerReply =
  | { ok: true; port?: number; listener?: ListenerRef; pair?: PairRef }
  | { ok: false; errno: number; message?: string };

/** A connection for a listener of this process, made by another. */
export interface LoopbackDelivery {
  listener: number;
  pair: PairRef;
}

export class SharedLoopback implements Loopback {
  private nextId = 0;
  private readonly bindings = new Map<Binding, number>();
  private readonly listenerIds = new Map<LoopbackListener, number>();
  private readonly listeners = new Map<number, LoopbackListener>();
  private readonly pairs = new Map<number, SharedPair>();

  constructor(
    private readonly owner: OwnerChannel,
    readonly process: number,
  ) {}

  private ask(request: BrokerRequest): Extract<BrokerReply, { ok: true }> {
    const reply = this.owner.call<BrokerReply>(request);
    if (!reply.ok) throw new WasiError(reply.errno);
    return reply;
  }

  bind(binding: Binding): void {
    const id = this.nextId++;
    binding.address.port = this.ask({ op: 'bind', id, binding }).port ?? binding.address.port;
    this.bindings.set(binding, id);
  }

  rebind(binding: Binding): void {
    const id = this.nextId++;
    this.ask({ op: 'rebind', id, binding });
    this.bindings.set(binding, id);
  }

  unbind(binding: Binding): void {
    const id = this.bindings.get(binding);
    if (id === undefined) return;
    this.bindings.delete(binding);
    this.ask({ op: 'unbind', id });
  }

  addListener(listener: LoopbackListener): void {
    const id = this.nextId++;
    this.listenerIds.set(listener, id);
    this.listeners.set(id, listener);
    const { address, v6only, bound } = listener;
    this.ask({ op: 'listen', listener: { process: this.process, id, address, v6only, bound } });
  }

  removeListener(listener: LoopbackListener): void {
    const id = this.listenerIds.get(listener);
    if (id === undefined) return;
    this.listenerIds.delete(listener);
    this.listeners.delete(id);
    this.ask({ op: 'unlisten', id });
  }

  listenerFor(to: Address): LoopbackListener | undefined {
    const found = this.ask({ op: 'listenerFor', to }).listener;
    if (!found) return undefined;
    if (found.process === this.process) return this.listeners.get(found.id);
    // Another process's listener: the connection is handed over to it through the owner.
    return {
      address: found.address,
      v6only: found.v6only,
      bound: found.bound,
      enqueue: (pair: StreamPair) => {
        (pair as SharedPair).handOver(1);
        this.ask({ op: 'enqueue', listener: found, pair: pair.id });
      },
    };
  }

  pair(family: Family, from: Address, to: Address): StreamPair {
    const made = this.ask({ op: 'pair', family, addresses: [from, to] }).pair!;
    return this.adopt(made);
  }

  restoredPair(id: number): StreamPair {
    return this.pairs.get(id) ?? this.adopt(this.ask({ op: 'restoredPair', id }).pair!);
  }

  private adopt(ref: PairRef): SharedPair {
    const local = new Set(([0, 1] as const).filter((side) => ref.holders[side] === this.process));
    const pair = new SharedPair(ref.id, ref.family, ref.addresses, ref.buffer, local);
    this.pairs.set(ref.id, pair);
    return pair;
  }

  release(pair: StreamPair, side: 0 | 1): void {
    pair.release(side);
    if (!pair.open[0] && !pair.open[1]) this.pairs.delete(pair.id);
  }

  /** The owner captures the pairs, once for the whole container. */
  capture(): LoopbackState {
    return { pairs: [] };
  }

  /** A connection to one of this process's listeners (one that closed meanwhile resets it). */
  deliver(delivery: LoopbackDelivery): void {
    const pair = this.adopt(delivery.pair);
    const listener = this.listeners.get(delivery.listener);
    if (listener) listener.enqueue(pair);
    else this.release(pair, 1);
  }
}
