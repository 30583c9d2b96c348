/** Trailing smoothing of IMU signals, shared by the manoeuvre and phone-handling detectors. */

/** Running mean of the last n values, O(1) per value. */
export class MovingAverage {
  private readonly buf: Float64Array
  private i = 0
  private n = 0
  private sum = 0
  constructor(size: number) {
    this.buf = new Float64Array(Math.max(1, size))
  }
  push(x: number): number {
    if (this.n === this.buf.length) this.sum -= this.buf[this.i]!
    else this.n++
    this.buf[this.i] = x
    this.sum += x
    this.i = (this.i + 1) % this.buf.length
    return this.sum / this.n
  }
  /** True once the window holds `size` values. */
  get full(): boolean {
    return this.n === this.buf.length
  }
}
