/**
 * Messages nested far deeper than mongod accepts (maxBSONDepth, 200: src/mongo/bson/bson_depth.h,
 * checked on receipt by src/mongo/bson/bson_validate.cpp) are answered Overflow (15) without
 * being parsed, so no depth a client can send reaches a recursive parser or evaluator of the
 * server. tests/conformance/value-storage.test.ts pins the reply a driver sees; these tests go
 * past what the drivers' own serializers can build.
 */
import { MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OfflineServer, startOfflineServer } from '../../offline-server/src/index.js';
import { MAX_BSON_DEPTH, parseFrame } from '../../offline-server/src/wire.js';
import { rejectionOf } from '../support/async.js';

/** `{a: {a: … {}}}`: a BSON document of `levels` levels, built without recursion. */
function deepDocument(levels: number): Buffer {
  const buffer = Buffer.alloc(8 * (levels - 1) + 5);
  for (let i = 0; i < levels - 1; i++) {
    const at = 7 * i;
    buffer.writeInt32LE(5 + 8 * (levels - 1 - i), at);
    buffer.writeUInt8(0x03, at + 4);
    buffer.write('a', at + 5, 'latin1');
    buffer.writeUInt8(0, at + 6);
  }
  buffer.writeInt32LE(5, 7 * (levels - 1)); // the innermost, empty document (its 0 is already there)
  return buffer; // the trailing terminators are the zeros Buffer.alloc left
}

/** An OP_MSG frame whose body section is `body`. */
function opMsg(body: Buffer, requestId: number, flags = 0): Buffer {
  const header = Buffer.alloc(21);
  header.writeInt32LE(21 + body.length, 0);
  header.writeInt32LE(requestId, 4);
  header.writeInt32LE(2013, 12);
  header.writeUInt32LE(flags, 16);
  header.writeUInt8(0, 20);
  return Buffer.concat([header, body]);
}

describe('parseFrame: depth checked on the raw bytes', () => {
  it('a body 100 000 levels deep is answered Overflow (15), not parsed', () => {
    const request = parseFrame(opMsg(deepDocument(100_000), 7));
    expect(request.requestId).toBe(7);
    expect(request.moreToCome).toBe(false);
    expect(request.rejection).toMatchObject({ ok: 0, code: 15, codeName: 'Overflow' });
  });

  it('keeps moreToCome, so a fire-and-forget message gets no reply', () => {
    const request = parseFrame(opMsg(deepDocument(1_000), 8, 1 << 1));
    expect(request.moreToCome).toBe(true);
    expect(request.rejection?.code).toBe(15);
  });

  it(`accepts ${MAX_BSON_DEPTH} levels and refuses one more`, () => {
    expect(parseFrame(opMsg(deepDocument(MAX_BSON_DEPTH), 1)).rejection).toBeUndefined();
    expect(parseFrame(opMsg(deepDocument(MAX_BSON_DEPTH + 1), 1)).rejection?.code).toBe(15);
  });

  it('refuses the smallest document that reaches one level too deep (6 bytes a level)', () => {
    // Small documents skip the walk (they cannot nest that deep): this one is exactly as small
    // as a refused document can be, each level a type byte, an empty name and a size, with
    // no terminators (malformed, but the depth is found first, as before).
    const size = 6 * MAX_BSON_DEPTH + 4;
    const body = Buffer.alloc(size);
    body.writeInt32LE(size, 0);
    for (let at = 4; at < size; at += 6) {
      body.writeUInt8(0x03, at);
      body.writeInt32LE(size - at - 2, at + 2);
    }
    expect(parseFrame(opMsg(body, 1)).rejection?.code).toBe(15);
  });

  it('a malformed document is left to the parser (which throws), never loops', () => {
    const body = deepDocument(3);
    body.writeUInt8(0x03, body.length - 1); // the last terminator becomes a type byte
    expect(() => parseFrame(opMsg(body, 1))).toThrow();
  });
});

describe('over TCP, with the driver', () => {
  let server: OfflineServer;
  let client: MongoClient;
  beforeAll(async () => {
    server = await startOfflineServer({ port: 0 });
    client = new MongoClient(server.uri);
    await client.connect();
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it('a filter of 10 000 nested $and is refused with Overflow and the same client keeps working', async () => {
    const coll = client.db('deep').collection('c');
    await coll.insertOne({ _id: 1, x: 1 } as never);
    let filter: Record<string, unknown> = { x: 1 };
    for (let i = 0; i < 10_000; i++) filter = { $and: [filter] };
    const error = await rejectionOf(coll.find(filter).toArray());
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(15);
    expect((error as MongoServerError).codeName).toBe('Overflow');
    expect(await coll.findOne({ x: 1 })).toEqual({ _id: 1, x: 1 });
  });
});
