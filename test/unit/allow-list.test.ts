import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AllowList, AllowListError, parseAllowRule } from '../../src/platform/allow-list.js';
import { Network } from '../../src/wasi/network.js';

test('allow-list rules: addresses, prefixes and ports, IPv4 and IPv6', () => {
  assert.deepEqual(parseAllowRule('10.1.2.3'), { family: 'ipv4', address: '10.1.2.3', prefix: 32, port: undefined });
  assert.deepEqual(parseAllowRule('10.0.0.0/8:6379'), { family: 'ipv4', address: '10.0.0.0', prefix: 8, port: 6379 });
  assert.deepEqual(parseAllowRule('fd00::/8'), { family: 'ipv6', address: 'fd00::', prefix: 8, port: undefined });
  assert.deepEqual(parseAllowRule('[::1]:443'), { family: 'ipv6', address: '::1', prefix: 128, port: 443 });
  assert.equal(parseAllowRule('none'), undefined);
  for (const bad of ['', 'redis.example', '10.0.0.0/33', '10.0.0.1:0', '10.0.0.1:70000', '10.0.0.1/8/9', '::1]:443']) {
    assert.throws(() => parseAllowRule(bad), AllowListError, bad);
  }
});

test('an allow-list lets through what a rule matches, port included, and nothing for none', () => {
  const list = new AllowList(['10.0.0.0/8:6379', '192.168.1.7', 'fd00::/8']);
  assert.ok(list.allows('10.9.8.7', 6379));
  assert.ok(!list.allows('10.9.8.7', 6380));
  assert.ok(list.allows('192.168.1.7', 1));
  assert.ok(!list.allows('192.168.1.8', 1));
  assert.ok(list.allows('fd12::1', 80));
  assert.ok(!list.allows('fe80::1', 80));
  assert.ok(!new AllowList(['none']).allows('10.0.0.1', 80));
});

test("a container's allow-list is part of its network's captured state, so it moves with it", () => {
  const options = { gateway: '127.0.0.1:1', container: 'c', token: 't', ports: [], allow: ['10.0.0.0/8'] };
  const state = new Network(options).capture();
  const restored = new Network(state, state);
  assert.ok(restored.allows('10.1.1.1', 80));
  assert.ok(!restored.allows('11.1.1.1', 80));
  assert.ok(new Network({ ...options, allow: undefined }).allows('11.1.1.1', 80), 'no list: anywhere');
});
