/**
 * MongoDB wire protocol framing: the two request formats the driver sends (OP_QUERY for the
 * first handshake, OP_MSG for everything after) and the two reply formats.
 * https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/
 */
import { type Document, deserialize, serialize } from 'bson';
import { codeName, ErrorCode } from './errors.js';
import { setField } from './values.js';

export const OpCode = { REPLY: 1, QUERY: 2004, COMPRESSED: 2012, MSG: 2013 } as const;

const MSG_FLAG_CHECKSUM_PRESENT = 1 << 0;
export const MSG_FLAG_MORE_TO_COME = 1 << 1;
const HEADER_SIZE = 16;
/** mongod's maxMessageSizeBytes; a larger frame is a protocol error. */
export const MAX_MESSAGE_SIZE = 48_000_000;

export interface Request {
  readonly requestId: number;
  readonly opCode: number;
  /** The command document, with OP_MSG document sequences (kind 1) merged in as arrays. */
  readonly command: Document;
  /** OP_MSG moreToCome: the client expects no reply. */
  readonly moreToCome: boolean;
  /** For OP_QUERY: the full collection name (`admin.$cmd`). */
  readonly collection?: string;
  /** Set when the message cannot be accepted: the error reply mongod sends instead. */
  readonly rejection?: Document;
}

/**
 * int64 stays a `Long` so that `$inc` and friends keep mongod's int64 arithmetic (the
 * evaluator handles Long throughout); int32 and double both become JS numbers.
 */
const DESERIALIZE_OPTIONS = {
  promoteLongs: false,
  promoteValues: true,
  promoteBuffers: false,
} as const;

/** Splits a byte stream into complete frames; keeps the remainder for the next chunk. */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Buffer[] = [];
    while (this.buffer.length >= 4) {
      const length = this.buffer.readInt32LE(0);
      if (length < HEADER_SIZE || length > MAX_MESSAGE_SIZE) {
        throw new Error(`invalid message length ${length}`);
      }
      if (this.buffer.length < length) break;
      frames.push(this.buffer.subarray(0, length));
      this.buffer = this.buffer.subarray(length);
    }
    return frames;
  }
}

export function parseFrame(frame: Buffer): Request {
  const requestId = frame.readInt32LE(4);
  const opCode = frame.readInt32LE(12);
  try {
    if (opCode === OpCode.MSG) return parseMsg(frame, requestId);
    if (opCode === OpCode.QUERY) return parseQuery(frame, requestId);
  } catch (error) {
    if (!(error instanceof TooDeep)) throw error;
    const moreToCome =
      opCode === OpCode.MSG && (frame.readUInt32LE(HEADER_SIZE) & MSG_FLAG_MORE_TO_COME) !== 0;
    return {
      requestId,
      opCode,
      command: {},
      moreToCome,
      rejection: {
        ok: 0,
        errmsg: `BSONObj exceeds maximum nested object depth of ${MAX_BSON_DEPTH}`,
        code: ErrorCode.Overflow,
        codeName: codeName(ErrorCode.Overflow),
      },
    };
  }
  throw new Error(`unsupported opCode ${opCode}`);
}

function readCString(buffer: Buffer, offset: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  if (end < 0) throw new Error('unterminated cstring');
  return [buffer.toString('utf8', offset, end), end + 1];
}

/**
 * mongod validates every message it receives (`net.wireObjectCheck`, on by default:
 * src/mongo/rpc/object_check.h, op_msg.cpp reads the body as `Validated<BSONObj>`), and
 * src/mongo/bson/bson_validate.cpp refuses a document nested deeper than `maxBSONDepth`
 * (`BSONDepth::kDefaultMaxAllowableDepth`, 200) with Overflow (15) before any command runs; the
 * connection stays open. Checked on the raw bytes, without recursion, so that a message nested
 * thousands of levels deep can reach neither js-bson's recursive parser nor the evaluator.
 */
export const MAX_BSON_DEPTH = 200;

class TooDeep extends Error {}

/** Throws TooDeep when the BSON document at `offset` nests more than MAX_BSON_DEPTH levels. */
function checkDepth(buffer: Buffer, offset: number): void {
  const ends = [offset + buffer.readInt32LE(offset)];
  const length = buffer.length;
  let position = offset + 4;
  while (ends.length > 0 && position < length) {
    const type = buffer[position] as number;
    if (type === 0) {
      // A terminator must end the innermost document; anything else is malformed and left
      // to the parser to report (this loop must never step backwards).
      if (ends.pop() !== position + 1) return;
      position += 1;
      continue;
    }
    // The name's terminating NUL, found byte by byte: names are short, and a native
    // `indexOf` call per element costs more than the scan.
    let nameEnd = position + 1;
    while (nameEnd < length && buffer[nameEnd] !== 0) nameEnd++;
    if (nameEnd >= length) return; // malformed: left to the parser to report
    position = nameEnd + 1;
    const size = valueSize(buffer, type, position);
    if (size === undefined || size < 0) return;
    if (type === 0x03 || type === 0x04) {
      if (ends.length >= MAX_BSON_DEPTH) throw new TooDeep();
      ends.push(position + size);
      position += 4;
    } else {
      position += size;
    }
  }
}

/** The byte size of a BSON value of `type` at `position`; undefined for an unknown type. */
function valueSize(buffer: Buffer, type: number, position: number): number | undefined {
  switch (type) {
    case 0x06: // undefined
    case 0x0a: // null
    case 0x7f: // MaxKey
    case 0xff: // MinKey
      return 0;
    case 0x08: // bool
      return 1;
    case 0x10: // int32
      return 4;
    case 0x01: // double
    case 0x09: // date
    case 0x11: // timestamp
    case 0x12: // int64
      return 8;
    case 0x07: // ObjectId
      return 12;
    case 0x13: // Decimal128
      return 16;
    case 0x02: // string
    case 0x0d: // JavaScript code
    case 0x0e: // symbol
      return 4 + buffer.readInt32LE(position);
    case 0x0c: // DBPointer
      return 4 + buffer.readInt32LE(position) + 12;
    case 0x05: // binary
      return 5 + buffer.readInt32LE(position);
    case 0x03: // document
    case 0x04: // array
    case 0x0f: // code with scope
      return buffer.readInt32LE(position);
    case 0x0b: {
      // regex: two C strings
      const patternEnd = buffer.indexOf(0, position);
      const flagsEnd = patternEnd < 0 ? -1 : buffer.indexOf(0, patternEnd + 1);
      return flagsEnd < 0 ? undefined : flagsEnd + 1 - position;
    }
    default:
      return undefined;
  }
}

/**
 * Below this size a document cannot nest deeper than MAX_BSON_DEPTH, so checkDepth cannot
 * refuse it: each level it enters takes at least 6 bytes (type, an empty name's NUL, the
 * int32 size), and refusing needs MAX_BSON_DEPTH levels after the 4-byte size of the top one.
 */
const DEPTH_CHECK_MIN_SIZE = 6 * MAX_BSON_DEPTH + 4;

function readDocument(buffer: Buffer, offset: number): [Document, number] {
  const size = buffer.readInt32LE(offset);
  if (size >= DEPTH_CHECK_MIN_SIZE) checkDepth(buffer.subarray(0, offset + size), offset);
  const document = deserialize(buffer.subarray(offset, offset + size), DESERIALIZE_OPTIONS);
  return [document, offset + size];
}

function parseMsg(frame: Buffer, requestId: number): Request {
  const flags = frame.readUInt32LE(HEADER_SIZE);
  const end = flags & MSG_FLAG_CHECKSUM_PRESENT ? frame.length - 4 : frame.length;
  let offset = HEADER_SIZE + 4;
  let body: Document | undefined;
  const sequences: [string, Document[]][] = [];
  while (offset < end) {
    const kind = frame.readUInt8(offset);
    offset += 1;
    if (kind === 0) {
      [body, offset] = readDocument(frame, offset);
    } else if (kind === 1) {
      const sectionEnd = offset + frame.readInt32LE(offset);
      let identifier: string;
      [identifier, offset] = readCString(frame, offset + 4);
      const documents: Document[] = [];
      while (offset < sectionEnd) {
        let document: Document;
        [document, offset] = readDocument(frame, offset);
        documents.push(document);
      }
      sequences.push([identifier, documents]);
    } else {
      throw new Error(`unsupported OP_MSG section kind ${kind}`);
    }
  }
  if (body === undefined) throw new Error('OP_MSG without a body section');
  // The identifier comes off the wire: define it (a `__proto__` sequence is a field, as in mongod).
  for (const [identifier, documents] of sequences) setField(body, identifier, documents);
  return {
    requestId,
    opCode: OpCode.MSG,
    command: body,
    moreToCome: (flags & MSG_FLAG_MORE_TO_COME) !== 0,
  };
}

function parseQuery(frame: Buffer, requestId: number): Request {
  const [collection, afterName] = readCString(frame, HEADER_SIZE + 4); // after flags
  const [query] = readDocument(frame, afterName + 8); // after numberToSkip, numberToReturn
  // Legacy commands may wrap the command as { $query: {...}, $readPreference: ... }.
  const command = (query.$query as Document | undefined) ?? query;
  return { requestId, opCode: OpCode.QUERY, command, moreToCome: false, collection };
}

let nextResponseId = 1;

function header(length: number, responseTo: number, opCode: number): Buffer {
  const buffer = Buffer.alloc(HEADER_SIZE);
  buffer.writeInt32LE(length, 0);
  buffer.writeInt32LE(nextResponseId++ & 0x7fffffff, 4);
  buffer.writeInt32LE(responseTo, 8);
  buffer.writeInt32LE(opCode, 12);
  return buffer;
}

/** The reply to a request, in the format matching the request's. */
export function encodeReply(request: Request, reply: Document): Buffer {
  const body = serialize(reply);
  if (request.opCode === OpCode.QUERY) {
    const prefix = Buffer.alloc(20); // responseFlags, cursorID (int64), startingFrom, numberReturned
    prefix.writeInt32LE(1, 16);
    const length = HEADER_SIZE + prefix.length + body.length;
    return Buffer.concat([header(length, request.requestId, OpCode.REPLY), prefix, body]);
  }
  const prefix = Buffer.alloc(5); // flagBits = 0, section kind 0
  const length = HEADER_SIZE + prefix.length + body.length;
  return Buffer.concat([header(length, request.requestId, OpCode.MSG), prefix, body]);
}
