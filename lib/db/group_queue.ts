/**
 * The queue behind group commit and group read: requests that arrive while a
 * group is at the store wait, and go together as the next group once it is
 * back. One group at a time per queue; a lone request goes at once.
 */
export abstract class GroupQueue<W> {
  protected waiting: W[] = [];
  /** The groups going to the store one after another, while any request waits; null when idle. */
  #draining: Promise<void> | null = null;

  protected enqueue(w: W) {
    this.waiting.push(w);
    this.#draining ??= this.#drain();
  }

  async #drain() {
    try {
      while (this.waiting.length) await this.runGroup();
    } finally {
      this.#draining = null;
    }
  }

  /** Resolves once every request enqueued so far is settled (for writes nobody awaits, before a store closes). */
  async settled(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /** Takes the next group off `waiting` and settles every request in it; never throws. */
  protected abstract runGroup(): Promise<void>;
}
