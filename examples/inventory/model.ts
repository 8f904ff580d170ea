/**
 * The inventory example's documents and the JSON the API answers with. Both apps (the driver
 * one in app.ts and the Mongoose one in mongoose/) store the same documents in the same
 * collections, so they share these types and views.
 */
import type { ObjectId } from 'mongodb';

/** `products`: one document per product; `stock` is in whole units and never below 0. */
export interface ProductDoc {
  _id: ObjectId;
  name: string;
  stock: number;
  /** Unit price in cents (integers: no floating-point money). */
  price: number;
}

/** One line of an order, a cart or a checkout. */
export interface LineDoc {
  productId: ObjectId;
  qty: number;
}

/** `orders`: written only in the transaction that took its stock. */
export interface OrderDoc {
  _id: ObjectId;
  items: LineDoc[];
  createdAt: Date;
  /** Set when the order came from a checkout (exactly one order per checkout). */
  checkoutId?: ObjectId;
}

/** `carts`: a customer's cart; finalizing a checkout empties it. */
export interface CartDoc {
  _id: ObjectId;
  lines: LineDoc[];
}

/** Where a checkout is: `open` until finalized (one order), then `finalized`. */
export type CheckoutStatus = 'open' | 'finalized';
/** Whether the payment provider confirmed the payment (the signed callback). */
export type PaymentStatus = 'pending' | 'paid';

/** `checkouts`: a snapshot of a cart and the amount to pay for it. */
export interface CheckoutDoc {
  _id: ObjectId;
  cartId: ObjectId;
  lines: LineDoc[];
  /** In cents. */
  amount: number;
  status: CheckoutStatus;
  paymentStatus: PaymentStatus;
  /** Written by the one callback that moved `paymentStatus` to `paid`. */
  payment?: { id: string; amount: number; paidAt: Date };
  /** Written by the one finalize that moved `status` to `finalized`. */
  orderId?: ObjectId;
  finalizedAt?: Date;
  createdAt: Date;
}

/** `payments`: the ledger of processed payment callbacks (one entry per paid checkout). */
export interface PaymentDoc {
  _id: ObjectId;
  checkoutId: ObjectId;
  paymentId: string;
  amount: number;
  processedAt: Date;
}

export const COLLECTIONS = {
  products: 'products',
  orders: 'orders',
  carts: 'carts',
  checkouts: 'checkouts',
  payments: 'payments',
  idempotencyKeys: 'idempotency_keys',
} as const;

export interface LineView {
  readonly productId: string;
  readonly qty: number;
}

export interface OrderView {
  readonly id: string;
  readonly items: readonly LineView[];
  readonly createdAt: string;
  readonly checkoutId?: string;
}

export interface ProductView {
  readonly id: string;
  readonly name: string;
  readonly stock: number;
  readonly price: number;
}

export interface CheckoutView {
  readonly id: string;
  readonly cartId: string;
  readonly lines: readonly LineView[];
  readonly amount: number;
  readonly status: CheckoutStatus;
  readonly paymentStatus: PaymentStatus;
  readonly orderId?: string;
}

export const lineView = (line: LineDoc): LineView => ({
  productId: line.productId.toHexString(),
  qty: line.qty,
});

/**
 * JSON of an order. Only plain strings and numbers: the view is what `withIdempotencyKey`
 * stores and replays, so a replay is byte-for-byte the first response.
 */
export const orderView = (order: OrderDoc): OrderView => ({
  id: order._id.toHexString(),
  items: order.items.map(lineView),
  createdAt: order.createdAt.toISOString(),
  ...(order.checkoutId === undefined ? {} : { checkoutId: order.checkoutId.toHexString() }),
});

export const productView = (product: ProductDoc): ProductView => ({
  id: product._id.toHexString(),
  name: product.name,
  stock: product.stock,
  price: product.price,
});

export const checkoutView = (checkout: CheckoutDoc): CheckoutView => ({
  id: checkout._id.toHexString(),
  cartId: checkout.cartId.toHexString(),
  lines: checkout.lines.map(lineView),
  amount: checkout.amount,
  status: checkout.status,
  paymentStatus: checkout.paymentStatus,
  ...(checkout.orderId === undefined ? {} : { orderId: checkout.orderId.toHexString() }),
});
