/**
 * The multi-line order race, shared by the tests (tests/examples/inventory*.test.ts) and the
 * demo (demo.ts): 100 concurrent orders of { A: 1, B: 1 } against 30 units of A and 20 of B.
 *
 * Invariant: no stock below 0; the units taken from A and from B each equal the number of
 * orders that got 201; the orders in the database are exactly the 201 responses' orders, each
 * with both lines; every other response is a 409 naming the short line(s), a line that is indeed
 * short at the end (never an undersell).
 */
import type { Express } from 'express';
import { type Db, ObjectId } from 'mongodb';
import { type Listening, listen } from '../shared/listen.js';
import { COLLECTIONS, type OrderDoc, type ProductDoc } from './model.js';

export const ORDER_RACE = { requests: 100, stockA: 30, stockB: 20 } as const;

export interface Reply {
  /** The status as a string: what the testing kit's race tallies ("201": 20, "409": 80). */
  readonly outcome: string;
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the app, checked field by field
  readonly body: any;
}

export interface OrderRace extends Listening {
  readonly a: ObjectId;
  readonly b: ObjectId;
}

/** Seeds two fresh products (their own ids: earlier storms do not interfere) and serves `app`. */
export async function openOrderRace(db: Db, app: Express): Promise<OrderRace> {
  const a = new ObjectId();
  const b = new ObjectId();
  await db.collection<ProductDoc>(COLLECTIONS.products).insertMany([
    { _id: a, name: 'A', stock: ORDER_RACE.stockA, price: 100 },
    { _id: b, name: 'B', stock: ORDER_RACE.stockB, price: 200 },
  ]);
  return { ...(await listen(app)), a, b };
}

/** POSTs `body` as JSON; `headers` added. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return {
    outcome: String(response.status),
    status: response.status,
    body: text === '' ? undefined : JSON.parse(text),
  };
}

/** One order of the storm: one unit of A and one of B. */
export function orderBoth(race: OrderRace): Promise<Reply> {
  return postJson(`${race.url}/orders`, {
    items: [
      { productId: race.a.toHexString(), qty: 1 },
      { productId: race.b.toHexString(), qty: 1 },
    ],
  });
}

export interface OrderRaceOutcome {
  readonly violations: string[];
  readonly created: number;
  /** e.g. "A=0 B=-80 orders=100" */
  readonly finalState: string;
}

/** Checks the database against the invariant and against what the replies said. */
export async function checkOrderRace(
  db: Db,
  race: OrderRace,
  replies: readonly Reply[],
): Promise<OrderRaceOutcome> {
  const violations: string[] = [];
  const products = db.collection<ProductDoc>(COLLECTIONS.products);
  const stockA = (await products.findOne({ _id: race.a }))?.stock;
  const stockB = (await products.findOne({ _id: race.b }))?.stock;
  const stored = await db
    .collection<OrderDoc>(COLLECTIONS.orders)
    .find({ 'items.productId': { $in: [race.a, race.b] } })
    .toArray();

  const createdIds = replies.filter((r) => r.status === 201).map((r) => String(r.body?.id));
  const created = createdIds.length;
  for (const r of replies) {
    if (r.status !== 201 && !(r.status === 409 && r.body?.error === 'insufficientStock')) {
      violations.push(`unexpected reply ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
  // A 409 must be true: stock only goes down during the storm, so a line that was short when
  // the 409 was sent is still short at the end. Without this check a service that refused every
  // order (nothing sold, nothing stored) would "hold".
  const finalStock = new Map([
    [race.a.toHexString(), stockA],
    [race.b.toHexString(), stockB],
  ]);
  const unjustified = replies.filter((r) => {
    if (r.status !== 409) return false;
    const shortages: unknown = r.body?.shortages;
    if (!Array.isArray(shortages) || shortages.length === 0) return true;
    return !shortages.some((s: { productId?: unknown; requested?: unknown }) => {
      const left = finalStock.get(String(s.productId));
      return left !== undefined && typeof s.requested === 'number' && left < s.requested;
    });
  }).length;
  if (unjustified > 0) {
    violations.push(`${unjustified} 409 insufficientStock replies name no line short in stock`);
  }
  if (stockA === undefined || stockA < 0) violations.push(`stock of A is ${stockA}`);
  if (stockB === undefined || stockB < 0) violations.push(`stock of B is ${stockB}`);
  // Units the 201 replies say were taken, summed from their lines.
  const promised = (id: ObjectId): number =>
    replies
      .filter((r) => r.status === 201)
      .flatMap((r) => (Array.isArray(r.body?.items) ? r.body.items : []))
      .filter((line: { productId?: unknown }) => line.productId === id.toHexString())
      .reduce((sum: number, line: { qty?: unknown }) => sum + Number(line.qty), 0);
  if (stockA !== undefined && ORDER_RACE.stockA - stockA !== promised(race.a)) {
    violations.push(
      `${ORDER_RACE.stockA - stockA} units of A taken, ${promised(race.a)} in 201 replies`,
    );
  }
  if (stockB !== undefined && ORDER_RACE.stockB - stockB !== promised(race.b)) {
    violations.push(
      `${ORDER_RACE.stockB - stockB} units of B taken, ${promised(race.b)} in 201 replies`,
    );
  }
  const storedIds = stored.map((o) => o._id.toHexString()).sort();
  if (JSON.stringify(storedIds) !== JSON.stringify([...createdIds].sort())) {
    violations.push(`${stored.length} orders stored, ${created} reported created, or other ids`);
  }
  for (const order of stored) {
    if (order.items.length !== 2)
      violations.push(`order ${order._id} has ${order.items.length} line(s)`);
  }
  if (created > Math.min(ORDER_RACE.stockA, ORDER_RACE.stockB)) {
    violations.push(`${created} orders served from ${ORDER_RACE.stockB} units of B: oversold`);
  }
  return {
    violations,
    created,
    finalState: `A=${stockA} B=${stockB} orders=${stored.length}`,
  };
}
