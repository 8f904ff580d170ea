/**
 * The carts example's model, shared by the real app (`app.ts`) and the naive one (`naive.ts`):
 * documents, request schemas, the merge arithmetic and the JSON views. Nothing here writes.
 *
 * Two kinds of cart hold the same lines:
 * - a signed-in user's cart: one document per user in `carts`, lines in `courses[]` (seed 000);
 * - a guest's cart: the session document in `sessions`, lines in `data.cart[]` (seed 000's
 *   express-session store).
 * A line's identity is `{ productId, size, color }` (seed 002): the same T-shirt in M and L
 * is two lines.
 */
import type { Collection, Db, Document, Filter, ObjectId } from 'mongodb';
import { z } from 'zod';
import { HttpError, objectId } from '../shared/http.js';

/** The most units one line may hold. Adds past it are refused (409); merges are cut to it. */
export const LINE_CAP = 10;

export interface Product {
  _id: ObjectId;
  name: string;
  /** In cents. */
  price: number;
  sizes: string[];
  colors: string[];
}

export interface Line {
  productId: ObjectId;
  size: string;
  color: string;
  quantity: number;
  /** Copied from the product when the line is created: the price the customer saw. */
  name: string;
  price: number;
}

export interface UserCart {
  _id?: ObjectId;
  userId: ObjectId;
  courses: Line[];
}

export interface GuestSession {
  _id: ObjectId;
  data: { cart: Line[]; mergedInto?: ObjectId; mergedAt?: Date };
  createdAt: Date;
}

export interface Collections {
  readonly products: Collection<Product>;
  readonly carts: Collection<UserCart>;
  readonly sessions: Collection<GuestSession>;
}

export function collections(db: Db): Collections {
  return {
    products: db.collection<Product>('products'),
    carts: db.collection<UserCart>('carts'),
    sessions: db.collection<GuestSession>('sessions'),
  };
}

/**
 * Where a cart lives: the user cart and the guest cart are served by the same routes, so each
 * handler is written once against this description.
 */
export interface Owner {
  /** `'users'` or `'sessions'`, the first path segment. */
  readonly kind: 'users' | 'sessions';
  /** The route parameter holding the owner's id. */
  readonly param: 'userId' | 'sessionId';
  /** The collection that holds the cart document. */
  collection(c: Collections): Collection<Document>;
  /** Selects the cart document of owner `id`. */
  filter(id: ObjectId): Filter<Document>;
  /** Dotted path of the lines array in that document. */
  readonly array: 'courses' | 'data.cart';
  /** The 404 reason when the document does not exist. */
  readonly notFound: 'cartNotFound' | 'sessionNotFound';
}

export const USER: Owner = {
  kind: 'users',
  param: 'userId',
  collection: (c) => c.carts as unknown as Collection<Document>,
  filter: (id) => ({ userId: id }),
  array: 'courses',
  notFound: 'cartNotFound',
};

export const GUEST: Owner = {
  kind: 'sessions',
  param: 'sessionId',
  collection: (c) => c.sessions as unknown as Collection<Document>,
  filter: (id) => ({ _id: id }),
  array: 'data.cart',
  notFound: 'sessionNotFound',
};

/** The lines of a cart document, read without trusting its shape (own properties only). */
export function linesOf(doc: Document, owner: Owner): Line[] {
  let value: unknown = doc;
  for (const key of owner.array.split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return [];
    value = (value as Record<string, unknown>)[key];
  }
  return Array.isArray(value) ? (value as Line[]) : [];
}

// ---------------------------------------------------------------------------------------------
// Request schemas. Strict objects: an unknown key is a 400, never silently stored. Strings are
// checked by pattern, so `{ "$gt": "" }` where a string belongs is a 400 naming the field.

const option = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1–32 letters, digits, "_" or "-"');

const identityShape = { productId: objectId, size: option, color: option };

/** `{ productId, size, color }`: which line. */
export const lineIdentity = z.strictObject(identityShape);

/** POST …/cart/lines: add `quantity` units (default 1) of one line. */
export const addBody = z.strictObject({
  ...identityShape,
  quantity: z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(LINE_CAP, `must be at most ${LINE_CAP}`)
    .default(1),
});

/** PUT …/cart/lines: set a line's quantity; 0 removes the line. */
export const setBody = z.strictObject({
  ...identityShape,
  quantity: z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be at least 0')
    .max(LINE_CAP, `must be at most ${LINE_CAP}`),
});

/** POST /users/:userId/cart/merge: the guest session whose cart joins the user's cart. */
export const mergeBody = z.strictObject({ sessionId: objectId });

export type Identity = z.infer<typeof lineIdentity>;

export function sameLine(line: Identity, identity: Identity): boolean {
  return (
    line.productId.equals(identity.productId) &&
    line.size === identity.size &&
    line.color === identity.color
  );
}

/**
 * Checks the requested size and colour against the product: 400 naming the field, with the
 * allowed values so the client can correct itself.
 */
export function checkOptions(product: Product, identity: Identity): void {
  for (const [field, allowed] of [
    ['size', product.sizes],
    ['color', product.colors],
  ] as const) {
    if (!allowed.includes(identity[field])) {
      throw new HttpError(400, {
        error: 'invalidRequest',
        field,
        message: `${product.name} is not available in ${field} "${identity[field]}"`,
        allowed,
      });
    }
  }
}

export const productNotFound = (productId: ObjectId) =>
  new HttpError(404, { error: 'productNotFound', productId: productId.toHexString() });

export const ownerNotFound = (owner: Owner, id: ObjectId) =>
  new HttpError(404, { error: owner.notFound, [owner.param]: id.toHexString() });

export const lineNotFound = (identity: Identity) =>
  new HttpError(404, { error: 'lineNotFound', line: identity });

// ---------------------------------------------------------------------------------------------
// The merge arithmetic, a pure function: both apps compute the same plan, they differ in how
// (and how often) they apply it.

export interface MergedLine extends Identity {
  /** Units this merge added to the user's line. */
  added: number;
  /** The line's quantity after the merge. */
  quantity: number;
}

export interface CappedLine extends Identity {
  /** What the line would have held without the cap (user's units + guest's units). */
  requested: number;
  /** What it holds: LINE_CAP. */
  kept: number;
  /** Guest units that did not fit. */
  dropped: number;
}

export interface MergePlan {
  /** The user's lines after the merge, in their order, new lines appended. */
  readonly lines: Line[];
  readonly merged: MergedLine[];
  readonly capped: CappedLine[];
  /** Guest lines that were not in the user's cart (they are appended). */
  readonly added: Line[];
}

const keyOf = (line: Identity) => `${line.productId.toHexString()}|${line.size}|${line.color}`;

/**
 * Sums the guest's lines into the user's: quantities add up per identity, each line is cut to
 * LINE_CAP (reported in `capped`), lines only the guest had are appended. A Map, not a plain
 * object, indexes the lines: identities come from stored documents.
 */
export function planMerge(userLines: readonly Line[], guestLines: readonly Line[]): MergePlan {
  const lines = userLines.map((line) => ({ ...line }));
  const byKey = new Map(lines.map((line) => [keyOf(line), line]));
  const before = new Map(lines.map((line) => [keyOf(line), line.quantity]));
  const added: Line[] = [];
  for (const guest of guestLines) {
    const existing = byKey.get(keyOf(guest));
    if (existing === undefined) {
      const line = { ...guest };
      lines.push(line);
      added.push(line);
      byKey.set(keyOf(line), line);
    } else {
      existing.quantity += guest.quantity;
    }
  }
  const merged: MergedLine[] = [];
  const capped: CappedLine[] = [];
  const seen = new Set<string>();
  for (const guest of guestLines) {
    const key = keyOf(guest);
    if (seen.has(key)) continue;
    seen.add(key);
    const line = byKey.get(key) as Line;
    const identity = { productId: line.productId, size: line.size, color: line.color };
    if (line.quantity > LINE_CAP) {
      capped.push({
        ...identity,
        requested: line.quantity,
        kept: LINE_CAP,
        dropped: line.quantity - LINE_CAP,
      });
      line.quantity = LINE_CAP;
    }
    const added = line.quantity - (before.get(key) ?? 0);
    if (added > 0) merged.push({ ...identity, added, quantity: line.quantity });
  }
  return { lines, merged, capped, added };
}

// ---------------------------------------------------------------------------------------------
// Views

export interface CartView {
  readonly lines: Line[];
  readonly totalQuantity: number;
  /** In cents. */
  readonly totalPrice: number;
}

export function cartView(lines: readonly Line[]): CartView {
  return {
    lines: [...lines],
    totalQuantity: lines.reduce((sum, line) => sum + line.quantity, 0),
    totalPrice: lines.reduce((sum, line) => sum + line.quantity * line.price, 0),
  };
}
