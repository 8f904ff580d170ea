/**
 * The carts races, as pieces both the test (tests/examples/carts.test.ts) and the demo
 * (demo.ts) assemble: fresh data and an app on a free port, one request, and the invariant
 * check that compares the database with what the responses said.
 *
 * - add:   100 concurrent "add 1 T-shirt M black" to one empty user cart (seed 000). The cart
 *          must end with ONE such line, whose quantity is the number of 200/201 answers (at
 *          most the cap of 10; the rest are 409 lineLimitReached).
 * - merge: 50 concurrent merges of one guest cart into one user cart, as two tabs logging in
 *          at the same moment, many times over (seed 002). The guest cart must be merged once:
 *          quantities summed and capped, no line twice, the guest cart empty, one response
 *          reporting the merge and the others "nothing merged".
 */
import { barrier } from 'mongo-atomics/testing';
import { type Db, ObjectId } from 'mongodb';
import { type Listening, listen } from '../shared/listen.js';
import { createApp } from './app.js';
import { collections, LINE_CAP, type Line, type MergedLine, sameLine } from './cart.js';
import { createNaiveApp } from './naive.js';
import { createIndexes, PRODUCTS, SAMPLE } from './setup.js';

export type AppKind = 'naive' | 'safe';

export const ADD_REQUESTS = 100;
export const MERGE_REQUESTS = 50;

/** The real app, or the naive one with a barrier for `parties` requests between reads and writes. */
export type RunningApp = Listening;

export async function startApp(db: Db, kind: AppKind, parties: number): Promise<RunningApp> {
  const app = kind === 'safe' ? createApp(db) : createNaiveApp(db, { afterRead: barrier(parties) });
  return listen(app);
}

async function seedCatalogue(db: Db): Promise<void> {
  await createIndexes(db);
  const { products } = collections(db);
  for (const product of PRODUCTS) {
    await products.updateOne({ _id: product._id }, { $setOnInsert: product }, { upsert: true });
  }
}

const line = (productId: ObjectId, size: string, color: string, quantity: number): Line => {
  const product = PRODUCTS.find((candidate) => candidate._id.equals(productId));
  if (product === undefined) throw new Error(`no sample product ${productId}`);
  return { productId, size, color, quantity, name: product.name, price: product.price };
};

async function postJson(url: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// ---------------------------------------------------------------------------------------------
// The add race

export interface AddStorm {
  readonly app: RunningApp;
  readonly db: Db;
  readonly userId: ObjectId;
}

/** The line every request adds. */
export const ADD_LINE = { productId: SAMPLE.tee, size: 'M', color: 'black' } as const;

export async function setUpAddStorm(db: Db, kind: AppKind): Promise<AddStorm> {
  await seedCatalogue(db);
  const userId = new ObjectId();
  await collections(db).carts.insertOne({ userId, courses: [] });
  return { app: await startApp(db, kind, ADD_REQUESTS), db, userId };
}

/** One "add 1 unit" request; the outcome named after the answer. */
export async function addOne(storm: AddStorm): Promise<{ outcome: string }> {
  const { status, body } = await postJson(`${storm.app.url}/users/${storm.userId}/cart/lines`, {
    productId: ADD_LINE.productId.toHexString(),
    size: ADD_LINE.size,
    color: ADD_LINE.color,
  });
  const named = { 201: 'pushed', 200: 'incremented', 409: 'lineLimitReached' }[status];
  return { outcome: named ?? `http${status}:${JSON.stringify(body)}` };
}

/** Violations of the add race's invariant, given every request's outcome. */
export async function checkAddStorm(
  storm: AddStorm,
  outcomes: readonly string[],
): Promise<string[]> {
  const cart = await collections(storm.db).carts.findOne({ userId: storm.userId });
  const lines = (cart?.courses ?? []).filter((candidate) => sameLine(candidate, ADD_LINE));
  const accepted = outcomes.filter((o) => o === 'pushed' || o === 'incremented').length;
  const quantity = lines.reduce((sum, candidate) => sum + candidate.quantity, 0);
  const violations: string[] = [];
  if (lines.length !== 1) violations.push(`${lines.length} lines for one product/size/color`);
  if (quantity !== accepted)
    violations.push(`quantity ${quantity} but ${accepted} adds answered 200/201`);
  if (quantity > LINE_CAP) violations.push(`quantity ${quantity} is over the cap of ${LINE_CAP}`);
  const pushed = outcomes.filter((o) => o === 'pushed').length;
  if (pushed !== 1) violations.push(`${pushed} requests answered 201 (line created)`);
  const odd = outcomes.filter((o) => !['pushed', 'incremented', 'lineLimitReached'].includes(o));
  if (odd.length > 0) violations.push(`unexpected answers: ${odd.slice(0, 3).join(', ')}`);
  return violations;
}

// ---------------------------------------------------------------------------------------------
// The merge race

export interface MergeStorm {
  readonly app: RunningApp;
  readonly db: Db;
  readonly userId: ObjectId;
  readonly sessionId: ObjectId;
}

/** The user's cart before the merge: 8 T-shirts M black. */
export const USER_LINES: readonly Line[] = [line(SAMPLE.tee, 'M', 'black', 8)];
/** The guest's cart: 4 more of that T-shirt (12 > cap: 2 dropped), 2 hoodies, 1 cap. */
export const GUEST_LINES: readonly Line[] = [
  line(SAMPLE.tee, 'M', 'black', 4),
  line(SAMPLE.hoodie, 'L', 'grey', 2),
  line(SAMPLE.cap, 'one-size', 'red', 1),
];
/** What the user's cart holds after exactly one merge. */
export const MERGED_LINES: readonly Line[] = [
  line(SAMPLE.tee, 'M', 'black', LINE_CAP),
  line(SAMPLE.hoodie, 'L', 'grey', 2),
  line(SAMPLE.cap, 'one-size', 'red', 1),
];

export async function setUpMergeStorm(db: Db, kind: AppKind): Promise<MergeStorm> {
  await seedCatalogue(db);
  const userId = new ObjectId();
  const sessionId = new ObjectId();
  const { carts, sessions } = collections(db);
  await carts.insertOne({ userId, courses: [...USER_LINES] });
  await sessions.insertOne({
    _id: sessionId,
    data: { cart: [...GUEST_LINES] },
    createdAt: new Date(),
  });
  return { app: await startApp(db, kind, MERGE_REQUESTS), db, userId, sessionId };
}

export interface MergeAnswer {
  /** `'merged'` (this request moved the lines), `'nothingMerged'` (a 200 repeat) or the odd answer. */
  readonly outcome: string;
  readonly merged?: MergedLine[];
  readonly cart?: { lines: Line[] };
}

/** One "merge the guest cart at login" request. */
export async function mergeOne(storm: MergeStorm): Promise<MergeAnswer> {
  const { status, body } = await postJson(`${storm.app.url}/users/${storm.userId}/cart/merge`, {
    sessionId: storm.sessionId.toHexString(),
  });
  if (status !== 200) return { outcome: `http${status}:${JSON.stringify(body)}` };
  const answer = body as { merged: MergedLine[]; cart: { lines: Line[] } };
  return {
    outcome: answer.merged.length > 0 ? 'merged' : 'nothingMerged',
    merged: answer.merged,
    cart: answer.cart,
  };
}

/** `[productId, size, color, quantity]` per line, for comparing stored lines with JSON ones. */
const shape = (
  lines: readonly { productId: unknown; size: string; color: string; quantity: number }[],
) => JSON.stringify(lines.map((l) => [String(l.productId), l.size, l.color, l.quantity]));

/** Violations of the merge race's invariant, given every request's answer. */
export async function checkMergeStorm(
  storm: MergeStorm,
  answers: readonly MergeAnswer[],
): Promise<string[]> {
  const { carts, sessions } = collections(storm.db);
  const cart = await carts.findOne({ userId: storm.userId });
  const guest = await sessions.findOne({ _id: storm.sessionId });
  const stored = cart?.courses ?? [];
  const violations: string[] = [];
  if (shape(stored) !== shape(MERGED_LINES)) {
    violations.push(`user cart is ${shape(stored)}, expected ${shape(MERGED_LINES)} (merged once)`);
  }
  const guestLines = guest?.data.cart.length ?? -1;
  if (guestLines !== 0) violations.push(`guest cart holds ${guestLines} lines after the merge`);
  const winners = answers.filter((a) => a.outcome === 'merged');
  if (winners.length !== 1) violations.push(`${winners.length} requests reported merging the cart`);
  const odd = answers.filter((a) => a.outcome !== 'merged' && a.outcome !== 'nothingMerged');
  if (odd.length > 0)
    violations.push(
      `unexpected answers: ${odd
        .slice(0, 3)
        .map((a) => a.outcome)
        .join(', ')}`,
    );
  // The one merge's answer must describe the cart as stored; repeats see it unchanged.
  for (const answer of answers) {
    if (answer.cart !== undefined && shape(answer.cart.lines) !== shape(stored)) {
      violations.push(
        `a ${answer.outcome} answer shows ${shape(answer.cart.lines)}, the cart holds ${shape(stored)}`,
      );
      break;
    }
  }
  return violations;
}

export async function describeMergeState(storm: MergeStorm): Promise<string> {
  const cart = await collections(storm.db).carts.findOne({ userId: storm.userId });
  const lines = cart?.courses ?? [];
  const tee = lines.filter((l) =>
    sameLine(l, { productId: SAMPLE.tee, size: 'M', color: 'black' }),
  );
  const hoodies = lines.filter((l) => l.productId.equals(SAMPLE.hoodie));
  return `T-shirt qty ${tee.reduce((s, l) => s + l.quantity, 0)}, ${lines.length} lines (${hoodies.length} hoodie)`;
}
