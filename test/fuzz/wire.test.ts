import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import * as api from '../../src/agent/api.js';
import { parseBody } from '../../src/platform/http.js';
import { dataChannelLayout, decodeFile, decodeMissing, Frame, FramePayload } from '../../src/protocol/data-channel.js';
import { decode, FrameSplitter } from '../../src/protocol/framing.js';
import { encodeTunnelFrame, readOffset, TunnelFrame, TunnelParser, TunnelPayload } from '../../src/protocol/tunnel.js';
import { fuzz, fuzzSeconds, mutatedJson } from './fuzz.js';

// The wire parsers, fed what a broken or hostile peer could send: the gateway tunnel, the
// migration data channel, the agent API's request bodies.

const timeout = (fuzzSeconds + 60) * 1000;

/** A JSON payload: valid-looking (a mutation of an object), any JSON, or not JSON at all. */
const jsonPayload = fc.oneof(
  fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
  mutatedJson({ container: 'c', token: 't', conns: [], epoch: 1, name: 'x', addr: '1.2.3.4', port: 1 }).map((value) =>
    Buffer.from(JSON.stringify(value) ?? 'null'),
  ),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
);
const payload = fc.oneof(
  jsonPayload,
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);

/** A byte stream cut into chunks as TCP may deliver it. */
const chunked = (stream: fc.Arbitrary<Buffer>) =>
  fc.tuple(stream, fc.array(fc.nat(64), { maxLength: 8 })).map(([bytes, cuts]) => {
    const chunks: Buffer[] = [];
    let at = 0;
    for (const cut of cuts) {
      chunks.push(bytes.subarray(at, at + cut));
      at += cut;
    }
    chunks.push(bytes.subarray(at));
    return chunks;
  });

test(`tunnel: any byte stream gives frames or a ProtocolError (${fuzzSeconds} s)`, { timeout }, (t) => {
  const frames = fc.array(
    fc
      .tuple(fc.integer({ min: 0, max: 12 }), fc.nat(), payload)
      .map(([type, conn, body]) => encodeTunnelFrame(type, conn >>> 0, body)),
    { maxLength: 6 },
  );
  const stream = fc.oneof(
    frames.map((list) => Buffer.concat(list)),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  );
  const { runs } = fuzz(chunked(stream), (chunks) => {
    const parser = new TunnelParser((type, _conn, body) => {
      const schema = (TunnelPayload as Record<string, Parameters<typeof decode>[0] | undefined>)[
        TunnelFrame[type] ?? ''
      ];
      if (schema) decode(schema, body);
      else if (type === TunnelFrame.Data || type === TunnelFrame.Ack || type === TunnelFrame.Fin) readOffset(body);
    });
    for (const chunk of chunks) parser.push(chunk);
  });
  t.diagnostic(`${runs} inputs`);
  assert.ok(runs > 0);
});

test(`data channel: any byte stream gives frames or a ProtocolError (${fuzzSeconds} s)`, { timeout }, (t) => {
  const frame = fc.tuple(fc.integer({ min: 0, max: 20 }), payload).map(([type, body]) => {
    const header = Buffer.alloc(5);
    header.writeUInt8(type, 0);
    header.writeUInt32LE(body.length, 1);
    return Buffer.concat([header, body]);
  });
  const stream = fc.oneof(
    fc.array(frame, { maxLength: 6 }).map((list) => Buffer.concat(list)),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  );
  const { runs } = fuzz(chunked(stream), (chunks) => {
    const splitter = new FrameSplitter(
      { layout: dataChannelLayout, channel: 'data channel', maxPayload: 1 << 20 },
      (header, body) => {
        const type = header[0] as Frame;
        const schema = (FramePayload as Record<string, Parameters<typeof decode>[0] | undefined>)[Frame[type] ?? ''];
        if (schema) decode(schema, body);
        else if (type === Frame.File) decodeFile(body);
        else if (type === Frame.PostCopy) decodeMissing(body);
      },
    );
    for (const chunk of chunks) splitter.push(chunk);
  });
  t.diagnostic(`${runs} inputs`);
  assert.ok(runs > 0);
});

test(`agent API: any request body is accepted or refused with a 400 naming the field (${fuzzSeconds} s)`, {
  timeout,
}, (t) => {
  const schemas = Object.entries(api).filter(([name]) => name.endsWith('Schema')) as [
    string,
    Parameters<typeof parseBody>[0],
  ][];
  const valid = { module: 'a'.repeat(64), args: [], id: 'a1b2c3d4e5f6', epoch: 2, to: { name: 'x', url: 'http://x' } };
  const { runs } = fuzz(fc.tuple(fc.constantFrom(...schemas), mutatedJson(valid)), ([[, schema], body]) => {
    parseBody(schema, body);
  });
  t.diagnostic(`${runs} inputs`);
  assert.ok(runs > 0);
});
