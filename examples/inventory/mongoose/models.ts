/**
 * Seed 003's Mongoose models (Product, Order), defined on a given Connection so an app, its
 * tests and a second app in one process each get their own. The documents are the same as the
 * driver app's (../model.ts), in the same collections.
 *
 * Schema options, and why:
 * - `autoIndex: false`, `autoCreate: false`: Mongoose would otherwise create collections and
 *   indexes on its own when a model is first compiled, in the background, racing the first
 *   requests (and, in a transaction, failing it). `prepareMongoose` creates them, once, at startup.
 * - `versionKey: false`: orders are written once and never re-saved; no `__v` to keep in step.
 */
import { type Connection, type Model, Schema } from 'mongoose';
import type { OrderDoc, ProductDoc } from '../model.js';

const PRODUCT_OPTIONS = {
  collection: 'products',
  autoIndex: false,
  autoCreate: false,
  versionKey: false,
} as const;

export const ProductSchema = new Schema<ProductDoc>(
  {
    name: { type: String, required: true },
    // `min` is checked only by save()/create() and validators: the guarded update is what keeps
    // stock from going negative under concurrency (see ../README.md).
    stock: { type: Number, required: true, min: 0 },
    price: { type: Number, required: true, min: 0 },
  },
  PRODUCT_OPTIONS,
);

const ItemSchema = new Schema(
  {
    productId: { type: Schema.Types.ObjectId, ref: 'Product', required: true },
    qty: { type: Number, required: true, min: 1 },
  },
  { _id: false },
);

export const OrderSchema = new Schema<OrderDoc>(
  {
    items: {
      type: [ItemSchema],
      required: true,
      validate: (items: unknown[]) => items.length > 0,
    },
    createdAt: { type: Date, default: Date.now },
    checkoutId: { type: Schema.Types.ObjectId, required: false },
  },
  { collection: 'orders', autoIndex: false, autoCreate: false, versionKey: false },
);

export interface InventoryModels {
  readonly Product: Model<ProductDoc>;
  readonly Order: Model<OrderDoc>;
}

/** The models on `connection` (compiled once per connection). */
export function inventoryModels(connection: Connection): InventoryModels {
  return {
    Product:
      (connection.models.Product as Model<ProductDoc> | undefined) ??
      connection.model<ProductDoc>('Product', ProductSchema),
    Order:
      (connection.models.Order as Model<OrderDoc> | undefined) ??
      connection.model<OrderDoc>('Order', OrderSchema),
  };
}
