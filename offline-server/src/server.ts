/**
 * The TCP server and command dispatcher: a single-node replica set primary as the Node driver
 * sees it. Commands run one at a time, each atomically (handlers are synchronous); the only
 * waits are fail point blocks and plain writes queued behind an open transaction.
 */
import { createServer, type Socket } from 'node:net';
import { type Document, Long, ObjectId, Timestamp } from 'bson';
import { checkClusterTimeTarget, parseReadConcern } from './clock.js';
import {
  expireTtlDocuments,
  HANDLERS,
  NOT_IN_TRANSACTION,
  RETRY_REPLY,
  SNAPSHOT_READS,
} from './commands.js';
import { CursorRegistry } from './cursors.js';
import { codeName, ErrorCode, isServerError, ServerError } from './errors.js';
import { FailPoint } from './failpoint.js';
import { type ErrorContext, errorLabels } from './labels.js';
import { checkCommandOptions } from './options.js';
import { Blocked, Storage, Transaction, WriteUnit } from './storage.js';
import { encodeReply, FrameReader, parseFrame, type Request } from './wire.js';

export interface OfflineServerOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  readonly host?: string;
  /** TCP port; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** Replica set name announced in `hello`. @default 'rs0' */
  readonly replicaSetName?: string;
  /**
   * Behave as a standalone mongod instead of a replica set primary: `hello` names no replica
   * set, and any command carrying a `txnNumber` (transactions, retryable writes) fails with
   * IllegalOperation (20), as on mongod. @default false
   */
  readonly standalone?: boolean;
}

export interface OfflineServer {
  /** e.g. `mongodb://127.0.0.1:PORT/?replicaSet=rs0` */
  readonly uri: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The wire version of MongoDB 7.0, whose behaviour this server imitates. */
const MAX_WIRE_VERSION = 21;
const VERSION = '7.0.0';

interface SessionState {
  /** Highest txnNumber seen on this session (transactions and retryable writes share it). */
  txnNumber: number;
  transaction: Transaction | undefined;
  /** What the last retryable write's txnNumber is answered with when it is retried. */
  retryableReply: { txnNumber: number; reply: Document } | undefined;
}

interface ConnectionState {
  readonly id: number;
  appName: string | undefined;
}

const PARAMETER_DEFAULTS = {
  transactionLifetimeLimitSeconds: 60,
  maxTransactionLockRequestTimeoutMillis: 5,
  ttlMonitorSleepSecs: 60,
  minSnapshotHistoryWindowInSeconds: 300,
} as const;
type ParameterName = keyof typeof PARAMETER_DEFAULTS;

/** Commands that change the catalog: each writes an oplog entry on mongod. */
const CATALOG_WRITES = new Set(['create', 'drop', 'dropDatabase', 'createIndexes', 'dropIndexes']);

function sessionKey(lsid: unknown): string | undefined {
  const id = (
    lsid as { id?: { toString(encoding: string): string; buffer?: Uint8Array } } | undefined
  )?.id;
  if (id === undefined || id === null) return undefined;
  if (id.buffer instanceof Uint8Array) return Buffer.from(id.buffer).toString('hex');
  return String(id);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Dispatcher {
  readonly storage = new Storage();
  readonly cursors = new CursorRegistry();
  readonly sessions = new Map<string, SessionState>();
  readonly failPoint = new FailPoint();
  readonly parameters: Record<ParameterName, number> = { ...PARAMETER_DEFAULTS };
  private readonly electionId = new ObjectId();
  private readonly timers: NodeJS.Timeout[] = [];
  private lastTtlRun = Date.now();

  constructor(
    readonly address: string,
    readonly replicaSetName: string | undefined,
  ) {
    // Expire transactions past their lifetime limit, and run the TTL monitor.
    const timer = setInterval(() => this.housekeeping(), 100);
    timer.unref();
    this.timers.push(timer);
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    for (const txn of [...this.storage.activeTransactions])
      this.storage.abort(txn, 'server shut down');
  }

  private housekeeping(): void {
    const now = Date.now();
    // Snapshot history past minSnapshotHistoryWindowInSeconds is released even without writes.
    this.storage.prune();
    for (const txn of [...this.storage.activeTransactions]) {
      if (now >= txn.expiresAt)
        this.storage.abort(txn, 'it exceeded the transaction lifetime limit');
    }
    if (now - this.lastTtlRun >= this.parameters.ttlMonitorSleepSecs * 1000) {
      this.lastTtlRun = now;
      const unit = new WriteUnit(this.storage, undefined);
      try {
        expireTtlDocuments(this.storage, unit, new Date(now));
        unit.commit();
      } catch (error) {
        // A document held by an open transaction is left for the next pass, as mongod does.
        if (!(error instanceof Blocked)) throw error;
      }
    }
  }

  hello(command: Document, connection: ConnectionState): Document {
    const legacy = command.ismaster !== undefined || command.isMaster !== undefined;
    const client = command.client as { application?: { name?: string } } | undefined;
    if (client?.application?.name !== undefined) connection.appName = client.application.name;
    const replicaSet =
      this.replicaSetName === undefined
        ? {}
        : {
            setName: this.replicaSetName,
            setVersion: 1,
            hosts: [this.address],
            primary: this.address,
            me: this.address,
            electionId: this.electionId,
            secondary: false,
          };
    return {
      helloOk: true,
      [legacy ? 'ismaster' : 'isWritablePrimary']: true,
      maxBsonObjectSize: 16 * 1024 * 1024,
      maxMessageSizeBytes: 48_000_000,
      maxWriteBatchSize: 100_000,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId: connection.id,
      minWireVersion: 0,
      maxWireVersion: MAX_WIRE_VERSION,
      readOnly: false,
      ...replicaSet,
    };
  }

  /** Runs one request; resolves to the reply, or undefined when the connection must close. */
  async handle(request: Request, connection: ConnectionState): Promise<Document | 'close'> {
    const command = request.command;
    // Drivers send txnNumber as int64; the session logic compares plain numbers.
    if (command.txnNumber instanceof Long) command.txnNumber = command.txnNumber.toNumber();
    const name = Object.keys(command)[0] ?? '';
    const db =
      typeof command.$db === 'string'
        ? command.$db
        : (request.collection?.split('.')[0] ?? 'admin');

    const fault = this.failPoint.check(name, connection.appName);
    if (fault?.closeConnection === true) return 'close';
    if (fault?.blockConnection === true) await sleep(fault.blockTimeMS ?? 0);

    // error_labels.cpp: labels follow from the session fields the command carried, the reply's
    // code and its writeConcernError; a fail point's `errorLabels` replaces them all.
    const labelsFor = (code: number | undefined, reply: Document): string[] => {
      if (fault?.errorLabels !== undefined) return [...fault.errorLabels];
      const wce = reply.writeConcernError as Document | undefined;
      const context: ErrorContext = {
        commandName: name,
        hasTxnNumber: command.txnNumber !== undefined,
        hasAutocommit: command.autocommit !== undefined,
        hasWriteConcernError: wce !== undefined,
        writeConcernErrorCode: typeof wce?.code === 'number' ? wce.code : undefined,
      };
      return errorLabels(code, context);
    };
    // A replica set member stamps every reply, success or error, with the cluster time and
    // the operation time (service_entry_point_common.cpp, appendClusterAndOperationTime).
    const stamp = (reply: Document): Document =>
      this.replicaSetName === undefined
        ? reply
        : { ...reply, ...this.storage.clusterClock.replyFields() };
    try {
      this.gossipIn(command);
      if (fault?.errorCode !== undefined) {
        throw new ServerError(fault.errorCode, "Failing command via 'failCommand' failpoint");
      }
      // A copy: the handler's reply may be recorded for retryable-write replays, and what the
      // fail point adds below belongs to this answer only.
      const reply = { ...(await this.run(name, db, command, connection)) };
      if (fault?.writeConcernError !== undefined) {
        reply.writeConcernError = fault.writeConcernError;
        const labels = labelsFor(undefined, reply);
        if (labels.length > 0) reply.errorLabels = labels;
      }
      return stamp({ ...reply, ok: 1 });
    } catch (error) {
      if (!isServerError(error)) throw error;
      const reply: Document = {
        ok: 0,
        errmsg: error.message,
        code: error.code,
        codeName: error.codeName,
        ...error.extra,
      };
      // mongod waits for write concern after a command that failed on its own too
      // (RunCommandAndWaitForWriteConcern::_handleError), so a fail point's writeConcernError
      // joins the error reply; an errorCode from the fail point fails it before that wait.
      if (fault?.writeConcernError !== undefined && fault.errorCode === undefined) {
        reply.writeConcernError = fault.writeConcernError;
      }
      const labels = error.errorLabels ?? labelsFor(error.code, reply);
      if (labels.length > 0) reply.errorLabels = labels;
      return stamp(reply);
    }
  }

  /**
   * A client's `$clusterTime` advances the cluster time. Without authentication mongod does not
   * check the signature (no keys to check it with); a standalone keeps no cluster time.
   */
  private gossipIn(command: Document): void {
    if (this.replicaSetName === undefined || command.$clusterTime === undefined) return;
    const clusterTime = (command.$clusterTime as { clusterTime?: unknown } | null)?.clusterTime;
    if (!(clusterTime instanceof Timestamp)) {
      throw new ServerError(
        ErrorCode.BadValue,
        'the offline test server expects $clusterTime.clusterTime to be a Timestamp',
      );
    }
    this.storage.clusterClock.advance(clusterTime);
  }

  private async run(
    name: string,
    db: string,
    command: Document,
    connection: ConnectionState,
  ): Promise<Document> {
    // A standalone mongod has no transactions and no retryable writes.
    if (this.replicaSetName === undefined && command.txnNumber !== undefined) {
      throw new ServerError(
        ErrorCode.IllegalOperation,
        'Transaction numbers are only allowed on a replica set member or mongos',
      );
    }
    switch (name) {
      case 'hello':
      case 'ismaster':
      case 'isMaster':
        return this.hello(command, connection);
      case 'ping':
        return {};
      case 'buildInfo':
      case 'buildinfo':
        return {
          version: VERSION,
          versionArray: [7, 0, 0, 0],
          gitVersion: 'offline-test-server',
          maxBsonObjectSize: 16 * 1024 * 1024,
          bits: 64,
          debug: false,
          offlineTestServer: true,
        };
      case 'getParameter':
        return this.getParameter(command);
      case 'setParameter':
        return this.setParameter(command);
      case 'configureFailPoint':
        if (db !== 'admin')
          throw new ServerError(
            ErrorCode.Unauthorized,
            'configureFailPoint may only be run against the admin database.',
          );
        return this.failPoint.configure(command);
      case 'endSessions':
      case 'killSessions':
        this.endSessions((command[name] as Document[] | undefined) ?? []);
        return {};
      case 'killAllSessions':
        this.endSessions([...this.sessions.keys()].map((key) => ({ id: key })));
        return {};
      case 'commitTransaction':
      case 'abortTransaction':
        checkCommandOptions(name, command);
        return this.endTransaction(name, command);
      default:
        return this.runDataCommand(name, db, command);
    }
  }

  private getParameter(command: Document): Document {
    const reply: Document = {};
    for (const key of Object.keys(command)) {
      // Own names only: `constructor` or `toString` is no parameter, whatever objects inherit.
      if (Object.hasOwn(PARAMETER_DEFAULTS, key))
        reply[key] = this.parameters[key as ParameterName];
    }
    if (Object.keys(reply).length === 0)
      throw new ServerError(ErrorCode.InvalidOptions, 'no option found to get');
    return reply;
  }

  private setParameter(command: Document): Document {
    const reply: Document = {};
    for (const [key, value] of Object.entries(command)) {
      if (key === 'setParameter' || key.startsWith('$') || key === 'lsid') continue;
      if (!Object.hasOwn(PARAMETER_DEFAULTS, key)) {
        throw new ServerError(
          ErrorCode.InvalidOptions,
          `attempted to set unrecognized parameter [${key}], use help:true to see options`,
        );
      }
      // mongod accepts 0 for the snapshot history window (keep no history).
      const min = key === 'minSnapshotHistoryWindowInSeconds' ? 0 : Number.MIN_VALUE;
      if (typeof value !== 'number' || !(value >= min)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `Invalid value for parameter ${key}: ${String(value)}`,
        );
      }
      reply.was = this.parameters[key as ParameterName];
      this.parameters[key as ParameterName] = value;
    }
    this.storage.historyWindowMs = this.parameters.minSnapshotHistoryWindowInSeconds * 1000;
    return reply;
  }

  private session(command: Document): SessionState | undefined {
    const key = sessionKey(command.lsid);
    if (key === undefined) return undefined;
    let state = this.sessions.get(key);
    if (state === undefined) {
      state = { txnNumber: -1, transaction: undefined, retryableReply: undefined };
      this.sessions.set(key, state);
    }
    return state;
  }

  private endSessions(lsids: readonly Document[]): void {
    for (const lsid of lsids) {
      const key = sessionKey(lsid) ?? String(lsid.id);
      const state = this.sessions.get(key);
      if (state?.transaction !== undefined)
        this.storage.abort(state.transaction, 'its session ended');
      this.sessions.delete(key);
    }
  }

  /**
   * The transaction a command with `autocommit: false` belongs to, starting one when asked.
   * Follows the rules of mongod's TransactionParticipant for a single replica set member.
   */
  private transactionFor(command: Document, name: string): Transaction {
    const session = this.session(command);
    const txnNumber = command.txnNumber as number | undefined;
    if (session === undefined || typeof txnNumber !== 'number') {
      throw new ServerError(
        ErrorCode.InvalidOptions,
        "'autocommit' field requires a transaction number to also be specified",
      );
    }
    if (txnNumber < session.txnNumber) {
      throw new ServerError(
        ErrorCode.TransactionTooOld,
        `Cannot start transaction ${txnNumber} on session because a newer transaction ${session.txnNumber} has already started`,
      );
    }
    if (command.startTransaction === true) {
      if (txnNumber === session.txnNumber) {
        throw new ServerError(
          ErrorCode.ConflictingOperationInProgress,
          `Transaction with txnNumber ${txnNumber} has already been started`,
        );
      }
      if (name === 'commitTransaction' || name === 'abortTransaction') {
        throw new ServerError(
          ErrorCode.NoSuchTransaction,
          `Transaction ${txnNumber} has not been started`,
        );
      }
      if (session.transaction?.state === 'inProgress')
        this.storage.abort(session.transaction, 'a newer transaction started');
      const limit = this.parameters.transactionLifetimeLimitSeconds * 1000;
      const txn = new Transaction(
        sessionKey(command.lsid)!,
        txnNumber,
        this.storage.clock,
        Date.now() + limit,
      );
      const level = (command.readConcern as Document | undefined)?.level;
      if (typeof level === 'string') txn.readConcernLevel = level;
      this.storage.activeTransactions.add(txn);
      session.txnNumber = txnNumber;
      session.transaction = txn;
      return txn;
    }
    const txn = session.transaction;
    if (txnNumber > session.txnNumber || txn === undefined || txn.txnNumber !== txnNumber) {
      throw new ServerError(
        ErrorCode.NoSuchTransaction,
        `Given transaction number ${txnNumber} does not match any in-progress transactions.`,
      );
    }
    return txn;
  }

  private endTransaction(
    name: 'commitTransaction' | 'abortTransaction',
    command: Document,
  ): Document {
    const txn = this.transactionFor(command, name);
    if (txn.state === 'aborted') {
      throw new ServerError(
        ErrorCode.NoSuchTransaction,
        `Transaction ${txn.txnNumber} has been aborted${txn.abortReason === undefined ? '' : ` because ${txn.abortReason}`}.`,
      );
    }
    if (txn.state === 'committed') {
      // Committing again is how drivers retry a commit whose result was unknown.
      if (name === 'commitTransaction') return {};
      throw new ServerError(
        ErrorCode.TransactionCommitted,
        `Transaction ${txn.txnNumber} has been committed.`,
      );
    }
    if (name === 'commitTransaction') this.storage.commit(txn);
    else this.storage.abort(txn, 'it was aborted by the client');
    return {};
  }

  /**
   * Checks a data command's `readConcern` as mongod does (read_concern_args.cpp, the commands'
   * supportsReadConcern, read_concern_mongod.cpp) and returns where a snapshot read reads: at
   * `atClusterTime`, or at the last applied write (a one-node majority commit point).
   */
  private readConcernFor(
    name: string,
    command: Document,
  ): { readAt: number | undefined; atClusterTime: Timestamp | undefined } {
    const none = { readAt: undefined, atClusterTime: undefined };
    const readConcern = parseReadConcern(command);
    if (readConcern === undefined) return none;
    const target = readConcern.afterClusterTime ?? readConcern.atClusterTime;
    const snapshot = readConcern.level === 'snapshot';
    const inTransaction = command.autocommit === false;
    // A transaction reads with its first statement's read concern: any later statement that
    // names one is refused, leaving the transaction open (mongod service_entry_point_common.cpp
    // and transaction_participant.cpp; jstests/core/txns/no_read_or_write_concern_inside_txn.js).
    // An empty `readConcern: {}` names none.
    if (
      inTransaction &&
      command.startTransaction !== true &&
      (readConcern.level !== undefined ||
        readConcern.afterClusterTime !== undefined ||
        readConcern.atClusterTime !== undefined)
    ) {
      throw new ServerError(
        ErrorCode.InvalidOptions,
        'Only the first command in a transaction may specify a readConcern',
      );
    }
    if (snapshot && !inTransaction && !SNAPSHOT_READS.has(name)) {
      throw new ServerError(
        ErrorCode.InvalidOptions,
        `Command ${name} does not support readConcern level snapshot outside a transaction :: caused by :: read concern snapshot not supported`,
      );
    }
    if (this.replicaSetName === undefined) {
      if (snapshot)
        throw new ServerError(
          ErrorCode.NotAReplicaSet,
          'node needs to be a replica set member to use readConcern: snapshot',
        );
      if (target !== undefined)
        throw new ServerError(
          ErrorCode.IllegalOperation,
          `Cannot specify ${readConcern.afterClusterTime === undefined ? 'atClusterTime' : 'afterClusterTime'} readConcern without replication enabled`,
        );
      return none;
    }
    // A time ahead of the cluster time is refused. One not yet reached by a write (the client
    // gossiped a later cluster time) is served at once: mongod waits for its periodic no-op
    // write (up to 10 s) and then reads the same data, as no write came in between.
    checkClusterTimeTarget(readConcern, this.storage.clusterClock);
    if (!snapshot) return none;
    if (inTransaction) {
      // mongod can start a transaction at a given atClusterTime; the driver never sends one
      // (it replaces a transaction's first readConcern with the session's), and it is not
      // imitated: refused rather than read at another time.
      if (readConcern.atClusterTime !== undefined) {
        throw new ServerError(
          ErrorCode.InvalidOptions,
          'the offline test server does not implement readConcern atClusterTime in a transaction',
        );
      }
      return none;
    }
    const atClusterTime = readConcern.atClusterTime ?? this.storage.clusterClock.lastApplied;
    return { readAt: this.storage.counterAt(atClusterTime), atClusterTime };
  }

  private async runDataCommand(name: string, db: string, command: Document): Promise<Document> {
    const handler = Object.hasOwn(HANDLERS, name) ? HANDLERS[name] : undefined;
    if (handler === undefined) {
      throw new ServerError(ErrorCode.CommandNotFound, `no such command: '${name}'`);
    }
    const { readAt, atClusterTime } = this.readConcernFor(name, command);
    let txn: Transaction | undefined;
    if (command.autocommit === false) {
      // Only commit and abort take a write concern in a transaction; the refusal leaves the
      // transaction as it was (mongod transaction_validation.cpp,
      // validateWriteConcernForTransaction; jstests/core/txns/no_read_or_write_concern_inside_txn.js).
      const writeConcern = command.writeConcern as unknown;
      if (
        writeConcern !== undefined &&
        !(
          typeof writeConcern === 'object' &&
          writeConcern !== null &&
          Object.keys(writeConcern).length === 0
        )
      ) {
        throw new ServerError(
          ErrorCode.InvalidOptions,
          'writeConcern is not allowed within a multi-statement transaction',
        );
      }
      txn = this.transactionFor(command, name);
      if (txn.state === 'aborted') {
        throw new ServerError(
          ErrorCode.NoSuchTransaction,
          `Transaction ${txn.txnNumber} has been aborted${txn.abortReason === undefined ? '' : ` because ${txn.abortReason}`}.`,
        );
      }
      if (txn.state === 'committed') {
        throw new ServerError(
          ErrorCode.TransactionCommitted,
          `Transaction ${txn.txnNumber} has been committed.`,
        );
      }
      if (NOT_IN_TRANSACTION.has(name)) {
        this.storage.abort(txn, `'${name}' is not allowed in a transaction`);
        throw new ServerError(
          ErrorCode.OperationNotSupportedInTransaction,
          `Cannot run '${name}' in a multi-document transaction.`,
        );
      }
    } else if (command.startTransaction !== undefined) {
      throw new ServerError(
        ErrorCode.InvalidOptions,
        'Specifying startTransaction requires autocommit: false',
      );
    }

    // Retryable writes: a repeated txnNumber returns the recorded reply and applies nothing.
    const session =
      txn === undefined && typeof command.txnNumber === 'number'
        ? this.session(command)
        : undefined;
    if (session !== undefined) {
      const txnNumber = command.txnNumber as number;
      if (txnNumber < session.txnNumber) {
        throw new ServerError(
          ErrorCode.TransactionTooOld,
          `Retryable write with txnNumber ${txnNumber} is prohibited on session because a newer retryable write with txnNumber ${session.txnNumber} has already started on this session.`,
        );
      }
      if (session.retryableReply?.txnNumber === txnNumber)
        return { ...session.retryableReply.reply };
      session.txnNumber = txnNumber;
    }

    const maxTimeMS =
      typeof command.maxTimeMS === 'number' && command.maxTimeMS > 0
        ? command.maxTimeMS
        : undefined;
    const deadline = maxTimeMS === undefined ? Number.POSITIVE_INFINITY : Date.now() + maxTimeMS;
    for (;;) {
      const unit = new WriteUnit(this.storage, txn, readAt);
      try {
        const reply = handler({
          db,
          command,
          unit,
          storage: this.storage,
          cursors: this.cursors,
          inTransaction: txn !== undefined,
          atClusterTime,
        });
        unit.commit();
        // Catalog changes are oplog writes too: they get their own Timestamp.
        if (txn === undefined && CATALOG_WRITES.has(name)) this.storage.clusterClock.tick();
        // A write error inside a transaction aborts it (e.g. DuplicateKey), as mongod does.
        if (txn !== undefined && Array.isArray(reply.writeErrors))
          this.storage.abort(txn, 'a write in it failed');
        if (session !== undefined) {
          // What a retry of this txnNumber is answered with: a findAndModify's is rebuilt from
          // its stored image, unprojected (see RETRY_REPLY); other writes repeat their reply.
          const retry = (reply as { [RETRY_REPLY]?: Document })[RETRY_REPLY];
          session.retryableReply = {
            txnNumber: command.txnNumber as number,
            reply: retry ?? { ...reply, retriedStmtIds: [0] },
          };
        }
        return reply;
      } catch (error) {
        if (error instanceof Blocked) {
          const remaining = deadline - Date.now();
          const timedOut = await Promise.race([
            error.holder.ended.then(() => false),
            remaining === Number.POSITIVE_INFINITY
              ? new Promise<boolean>(() => {})
              : sleep(remaining).then(() => true),
          ]);
          if (timedOut)
            throw new ServerError(ErrorCode.MaxTimeMSExpired, 'operation exceeded time limit');
          continue;
        }
        // Any failed command aborts the transaction it ran in.
        if (txn !== undefined) this.storage.abort(txn, `a '${name}' command failed`);
        if (!isServerError(error)) {
          throw new ServerError(
            ErrorCode.InternalError,
            `offline server internal error in '${name}': ${error instanceof Error ? error.message : String(error)}`,
          );
        }
        throw error;
      }
    }
  }
}

export async function startOfflineServer(
  options: OfflineServerOptions = {},
): Promise<OfflineServer> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  let dispatcher: Dispatcher | undefined;
  let nextConnectionId = 1;

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const connection: ConnectionState = { id: nextConnectionId++, appName: undefined };
    const reader = new FrameReader();
    // Requests on one connection are answered in order.
    let queue = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        queue = queue
          .then(async () => {
            if (socket.destroyed || dispatcher === undefined) return;
            const request = parseFrame(frame);
            const reply = request.rejection ?? (await dispatcher.handle(request, connection));
            if (reply === 'close') {
              socket.destroy();
              return;
            }
            if (!request.moreToCome && !socket.destroyed) socket.write(encodeReply(request, reply));
          })
          .catch((error: unknown) => {
            // A bug in the server: answer like mongod's InternalError and keep serving.
            const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
            try {
              const request = parseFrame(frame);
              if (!request.moreToCome && !socket.destroyed) {
                socket.write(
                  encodeReply(request, {
                    ok: 0,
                    code: ErrorCode.InternalError,
                    codeName: codeName(ErrorCode.InternalError),
                    errmsg: message,
                  }),
                );
              }
            } catch {
              socket.destroy();
            }
          });
      }
    });
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  const port = address.port;
  const replicaSetName =
    options.standalone === true ? undefined : (options.replicaSetName ?? 'rs0');
  dispatcher = new Dispatcher(`${host}:${port}`, replicaSetName);
  const active = dispatcher;

  return {
    uri:
      replicaSetName === undefined
        ? `mongodb://${host}:${port}/`
        : `mongodb://${host}:${port}/?replicaSet=${replicaSetName}`,
    host,
    port,
    close: async () => {
      active.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
