import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { RoamError } from './errors.js';

/**
 * Which hosts a container's outgoing connections may reach: rules `ADDR[/PREFIX][:PORT]` (an
 * IPv6 address in brackets when a port follows: `[fd00::]/8:443`), or `none`. No list at all
 * means any destination. The rules travel as text (agent API, the container's captured network
 * state) and are parsed where they are checked.
 */
export class AllowListError extends RoamError {
  readonly code = 'ROAM_ALLOW_LIST';
}

export interface AllowRule {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
  /** undefined: every port. */
  port?: number;
}

/** `none`: the rule that allows nothing (a list of it alone refuses every destination). */
export const allowNothing = 'none';

export function parseAllowRule(text: string): AllowRule | undefined {
  const bad = (why: string) => new AllowListError(`allow-list rule ${JSON.stringify(text)}: ${why}`);
  if (text === allowNothing) return undefined;
  let rest = text;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](.*)$/.exec(rest);
  let address: string;
  if (bracketed) {
    address = bracketed[1]!;
    rest = bracketed[2]!;
  } else {
    const slash = rest.indexOf('/');
    const colon = rest.indexOf(':');
    // An unbracketed address with two colons is IPv6 and takes no port.
    const ipv6 = colon >= 0 && rest.indexOf(':', colon + 1) >= 0;
    const end = ipv6
      ? slash >= 0
        ? slash
        : rest.length
      : Math.min(...[slash, colon, rest.length].filter((i) => i >= 0));
    address = rest.slice(0, end);
    rest = rest.slice(end);
  }
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family) throw bad(`${address || 'the address'} is not an IPv4 or IPv6 address (host names are not rules)`);
  const bits = family === 'ipv4' ? 32 : 128;
  let prefix = bits;
  const parts = /^(?:\/(\d+))?(?::(\d+))?$/.exec(rest);
  if (!parts) throw bad('expected ADDR[/PREFIX][:PORT]');
  if (parts[1] !== undefined) {
    prefix = Number(parts[1]);
    if (prefix > bits) throw bad(`a prefix of ${prefix} bits is longer than the address`);
  }
  if (parts[2] !== undefined) {
    port = Number(parts[2]);
    if (port < 1 || port > 65535) throw bad(`port ${parts[2]} is not a TCP port`);
  }
  return { family, address, prefix, port };
}

/** Whether `text` is a rule (for schemas, which say what they expected themselves). */
export function isAllowRule(text: string): boolean {
  try {
    parseAllowRule(text);
    return true;
  } catch {
    return false;
  }
}

/** A parsed allow-list: one BlockList (Node's subnet matcher) for rules without a port, one per port. */
export class AllowList {
  private readonly byPort = new Map<number | 'any', BlockList>();

  constructor(rules: readonly string[]) {
    for (const text of rules) {
      const rule = parseAllowRule(text);
      if (!rule) continue;
      const key = rule.port ?? 'any';
      const list = this.byPort.get(key) ?? new BlockList();
      this.byPort.set(key, list);
      list.addSubnet(rule.address, rule.prefix, rule.family);
    }
  }

  allows(address: string, port: number): boolean {
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    return [this.byPort.get('any'), this.byPort.get(port)].some((list) => list?.check(address, family) ?? false);
  }
}
