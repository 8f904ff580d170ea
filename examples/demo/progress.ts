/** A one-line progress bar on a TTY; plain milestone lines elsewhere (CI logs). */
export class Progress {
  private done = 0;
  private lastPrinted = -1;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {
    this.render();
  }

  tick(): void {
    this.done += 1;
    this.render();
  }

  finish(summary: string): void {
    if (this.out.isTTY) this.out.write('\r\x1b[2K');
    this.out.write(`  ${this.label.padEnd(34)} ${summary}\n`);
  }

  private render(): void {
    if (this.out.isTTY) {
      const width = 30;
      const filled = Math.round((this.done / this.total) * width);
      this.out.write(
        `\r  ${this.label.padEnd(34)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total}`,
      );
      return;
    }
    const quarter = Math.floor((this.done / this.total) * 4);
    if (quarter !== this.lastPrinted && quarter < 4) {
      this.lastPrinted = quarter;
      this.out.write(`  ${this.label.padEnd(34)} ${this.done}/${this.total}\n`);
    }
  }
}

/** Renders rows as an aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
