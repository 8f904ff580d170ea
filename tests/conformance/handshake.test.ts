/**
 * Connection, handshake and server identity.
 *
 * Sources: MongoDB manual, reference/command/ping, reference/command/hello,
 * reference/command/buildInfo; mongodb/specifications source/mongodb-handshake/handshake.md and
 * source/sessions/driver-sessions.md; server error_codes.yml (CommandNotFound = 59).
 */
import { MongoServerError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('handshake');

describe('handshake and server identity', () => {
  // Manual: reference/command/ping — "returns { ok: 1 }".
  it('ping answers ok: 1', async () => {
    const reply = await t.client.db('admin').command({ ping: 1 });
    expect(reply.ok).toBe(1);
  });

  // Manual: reference/command/hello — a replica-set primary reports isWritablePrimary: true,
  // setName, hosts; logicalSessionTimeoutMinutes is what enables sessions (driver-sessions spec).
  it('hello reports a writable primary of a named replica set that supports sessions', async () => {
    const hello = await t.client.db('admin').command({ hello: 1 });
    expect(hello.ok).toBe(1);
    expect(hello.isWritablePrimary).toBe(true);
    expect(typeof hello.setName).toBe('string');
    expect(hello.setName.length).toBeGreaterThan(0);
    expect(typeof hello.logicalSessionTimeoutMinutes).toBe('number');
    expect(typeof hello.maxWireVersion).toBe('number');
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(hello.minWireVersion);
  });

  // SDAM spec: the driver trusts `hosts` of the primary, so it must contain the address in use.
  it('hello lists the address the client is connected to among the set hosts', async () => {
    const hello = await t.client.db('admin').command({ hello: 1 });
    const used = t.client.options.hosts.map((host) => host.toString());
    expect(Array.isArray(hello.hosts)).toBe(true);
    expect(used.some((address) => (hello.hosts as string[]).includes(address))).toBe(true);
  });

  // Manual: reference/command/buildInfo — "version" is the server version string.
  it('buildInfo reports a dotted version string', async () => {
    const info = await t.client.db('admin').command({ buildInfo: 1 });
    expect(info.ok).toBe(1);
    expect(typeof info.version).toBe('string');
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  // error_codes.yml: CommandNotFound = 59; mongod answers "no such command: '<name>'".
  it('an unknown command fails with CommandNotFound (59)', async () => {
    const error = await serverError(t.db.command({ noSuchCommandForConformance: 1 }));
    expect(error).toBeInstanceOf(MongoServerError);
    expect(error.code).toBe(59);
    expect(error.codeName).toBe('CommandNotFound');
    expect(error.errmsg).toContain('no such command');
    expect(error.errmsg).toContain('noSuchCommandForConformance');
  });

  // Sessions spec (driver-sessions.md): an explicit session's lsid is attached to its commands.
  it('an explicit session runs operations carrying its lsid and ends cleanly', async () => {
    const coll = t.db.collection<Doc>('sessions');
    const session = t.client.startSession();
    try {
      t.commands.reset();
      await coll.insertOne({ _id: 1, via: 'session' }, { session });
      const found = await coll.findOne({ _id: 1 }, { session });
      expect(found).toEqual({ _id: 1, via: 'session' });
      const sent = t.commands.started.filter((event) => event.commandName === 'insert');
      expect(sent).toHaveLength(1);
      const lsid = sent[0]?.command.lsid;
      expect(lsid).toBeDefined();
      expect(lsid.id.toString('hex')).toBe(session.id?.id.toString('hex'));
    } finally {
      await session.endSession();
    }
    expect(session.hasEnded).toBe(true);
  });
});
