/**
 * The `failCommand` fail point, as documented for mongod's test commands and used by the
 * drivers' specification tests (mongodb/specifications: `source/transactions/tests/README`).
 */
import type { Document } from 'bson';
import { ErrorCode, ServerError } from './errors.js';

export interface Fault {
  readonly closeConnection?: boolean;
  readonly blockConnection?: boolean;
  readonly blockTimeMS?: number;
  readonly errorCode?: number;
  readonly errorLabels?: readonly string[];
  readonly writeConcernError?: Document;
}

type Mode =
  | { kind: 'off' }
  | { kind: 'alwaysOn' }
  | { kind: 'times'; left: number }
  | { kind: 'skip'; left: number };

export class FailPoint {
  private mode: Mode = { kind: 'off' };
  private failCommands: ReadonlySet<string> = new Set();
  private appName: string | undefined;
  private fault: Fault = {};
  private timesEntered = 0;

  configure(command: Document): Document {
    if (command.configureFailPoint !== 'failCommand') {
      throw new ServerError(
        ErrorCode.BadValue,
        `Cannot find fail point ${String(command.configureFailPoint)} (only 'failCommand' is implemented by the offline server)`,
      );
    }
    const mode = command.mode as unknown;
    let next: Mode;
    if (mode === 'off') next = { kind: 'off' };
    else if (mode === 'alwaysOn') next = { kind: 'alwaysOn' };
    else if (
      typeof mode === 'object' &&
      mode !== null &&
      typeof (mode as Document).times === 'number'
    ) {
      next = { kind: 'times', left: (mode as Document).times as number };
    } else if (
      typeof mode === 'object' &&
      mode !== null &&
      typeof (mode as Document).skip === 'number'
    ) {
      next = { kind: 'skip', left: (mode as Document).skip as number };
    } else {
      throw new ServerError(
        ErrorCode.BadValue,
        'mode must be "off", "alwaysOn", { times: n } or { skip: n }',
      );
    }
    const data = (command.data as Document | undefined) ?? {};
    if (next.kind !== 'off' && !Array.isArray(data.failCommands)) {
      throw new ServerError(ErrorCode.BadValue, "'failCommands' must be an array of command names");
    }
    const previous = this.timesEntered;
    this.mode = next;
    this.failCommands = new Set((data.failCommands as string[] | undefined) ?? []);
    this.appName = typeof data.appName === 'string' ? data.appName : undefined;
    const fault: { -readonly [K in keyof Fault]: Fault[K] } = {};
    if (data.closeConnection === true) fault.closeConnection = true;
    if (data.blockConnection === true) {
      fault.blockConnection = true;
      fault.blockTimeMS = typeof data.blockTimeMS === 'number' ? data.blockTimeMS : 0;
    }
    if (typeof data.errorCode === 'number') fault.errorCode = data.errorCode;
    if (Array.isArray(data.errorLabels)) fault.errorLabels = data.errorLabels as string[];
    if (data.writeConcernError !== undefined)
      fault.writeConcernError = data.writeConcernError as Document;
    this.fault = fault;
    this.timesEntered = 0;
    return { count: previous };
  }

  /** The fault to inject into this command, if the fail point fires for it. */
  check(commandName: string, appName: string | undefined): Fault | undefined {
    if (this.mode.kind === 'off' || commandName === 'configureFailPoint') return undefined;
    if (!this.failCommands.has(commandName)) return undefined;
    if (this.appName !== undefined && this.appName !== appName) return undefined;
    switch (this.mode.kind) {
      case 'skip':
        if (this.mode.left > 0) {
          this.mode.left -= 1;
          return undefined;
        }
        break;
      case 'times':
        this.mode.left -= 1;
        if (this.mode.left <= 0) this.mode = { kind: 'off' };
        break;
      case 'alwaysOn':
        break;
    }
    this.timesEntered += 1;
    return this.fault;
  }
}
