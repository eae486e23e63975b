/**
 * The queue behind group commit and group read: requests that arrive while a
 * group is at the store wait, and go together as the next group once it is
 * back. One group at a time per queue; a lone request goes at once.
 */
export abstract class GroupQueue<W> {
  protected waiting: W[] = [];
  #running = false;

  protected enqueue(w: W) {
    this.waiting.push(w);
    if (!this.#running) this.#drain();
  }

  async #drain() {
    this.#running = true;
    try {
      while (this.waiting.length) await this.runGroup();
    } finally {
      this.#running = false;
    }
  }

  /** Takes the next group off `waiting` and settles every request in it; never throws. */
  protected abstract runGroup(): Promise<void>;
}
