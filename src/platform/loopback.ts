/**
 * Loopback in a host name, host:port or URL, rewritten to `alias`: how a node that reaches the
 * cluster's loopback elsewhere (a VM: its host is 10.0.2.2) must address it. No alias: unchanged.
 */
export function aliasLoopback(address: string, alias: string | undefined): string {
  return alias ? address.replace(/^(https?:\/\/)?(127\.0\.0\.1|localhost|\[::1\])(?=$|[:/])/, `$1${alias}`) : address;
}
