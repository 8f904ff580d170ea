export interface OfflineServerOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  readonly host?: string;
  /** TCP port; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** Replica set name announced in `hello`. @default 'rs0' */
  readonly replicaSetName?: string;
}

export interface OfflineServer {
  /** e.g. `mongodb://127.0.0.1:PORT/?replicaSet=rs0` */
  readonly uri: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startOfflineServer(_options: OfflineServerOptions = {}): Promise<OfflineServer> {
  throw new Error('not yet implemented');
}
