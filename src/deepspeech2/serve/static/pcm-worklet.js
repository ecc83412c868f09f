// AudioWorklet: the microphone's float samples at the context's rate -> 16-bit PCM at the
// server's rate, posted to the page in blocks of about 100 ms.
//
// Resampling: a windowed-sinc low-pass FIR (Blackman window, 64 taps per side at the input
// rate, cut-off at 90 % of the output's Nyquist frequency) evaluated at each output
// sample's fractional input position, so nothing above the new Nyquist frequency folds
// back into the speech band. At equal rates the samples pass through unchanged.
class PcmWorklet extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = options.processorOptions.targetRate;
    this.step = sampleRate / this.target; // input samples per output sample
    this.cutoff = Math.min(1, 1 / this.step) * 0.9; // as a fraction of the input's Nyquist frequency
    this.half = this.step > 1 ? 64 : 0; // filter half-width in input samples
    this.history = new Float32Array(0); // input samples still needed by the filter
    this.position = this.half; // next output sample's position in history
    this.out = [];
    this.block = Math.round(this.target / 10);
    // "flush": send what is left (the page is stopping), then say so.
    this.port.onmessage = () => {
      this.send();
      this.port.postMessage("flushed");
    };
  }

  kernel(x) {
    if (x === 0) return this.cutoff;
    const w = 0.42 + 0.5 * Math.cos(Math.PI * x / (this.half + 1)) + 0.08 * Math.cos(2 * Math.PI * x / (this.half + 1));
    return (Math.sin(Math.PI * this.cutoff * x) / (Math.PI * x)) * w;
  }

  send() {
    const pcm = Int16Array.from(this.out);
    this.out = [];
    this.port.postMessage(pcm.buffer, [pcm.buffer]);
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    const buffer = new Float32Array(this.history.length + n);
    buffer.set(this.history);
    for (const channel of channels) {
      for (let i = 0; i < n; i++) buffer[this.history.length + i] += channel[i] / channels.length;
    }
    while (this.position + this.half < buffer.length) {
      let sample;
      if (this.half === 0) {
        const i = Math.floor(this.position);
        const frac = this.position - i;
        sample = buffer[i] * (1 - frac) + (i + 1 < buffer.length ? buffer[i + 1] : buffer[i]) * frac;
      } else {
        const centre = Math.floor(this.position);
        const frac = this.position - centre;
        sample = 0;
        for (let j = centre - this.half + 1; j <= centre + this.half; j++) {
          if (j >= 0) sample += buffer[j] * this.kernel(j - centre - frac);
        }
      }
      sample = Math.max(-1, Math.min(1, sample));
      this.out.push(sample < 0 ? sample * 0x8000 : sample * 0x7fff);
      this.position += this.step;
    }
    // Keep what the next outputs still read.
    const keep = Math.max(0, Math.floor(this.position) - this.half);
    this.history = buffer.slice(keep);
    this.position -= keep;
    if (this.out.length >= this.block) this.send();
    return true;
  }
}

registerProcessor("pcm-worklet", PcmWorklet);
