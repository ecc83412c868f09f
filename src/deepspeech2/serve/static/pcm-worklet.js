// AudioWorklet: the microphone's float samples at the context's rate -> 16-bit PCM at the
// server's rate, posted to the page in blocks of about 100 ms. Downsampling averages the
// input over each output sample's span (a box low-pass) and interpolates between spans,
// which keeps speech intelligible for the recognizer without aliasing most of the band.
class PcmWorklet extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = options.processorOptions.targetRate;
    this.step = sampleRate / this.target; // input samples per output sample
    this.position = 0; // where the next output sample falls in the input, relative to this block
    this.previous = 0;
    this.out = [];
    this.block = Math.round(this.target / 10);
    // "flush": send what is left (the page is stopping), then an empty block to say so.
    this.port.onmessage = () => {
      const pcm = Int16Array.from(this.out);
      this.out = [];
      this.port.postMessage(pcm.buffer, [pcm.buffer]);
      this.port.postMessage("flushed");
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    const mono = new Float32Array(n);
    for (const channel of channels) for (let i = 0; i < n; i++) mono[i] += channel[i] / channels.length;
    const half = Math.max(0, Math.floor(this.step / 2));
    while (this.position < n) {
      const centre = Math.floor(this.position);
      let sum = 0;
      let count = 0;
      for (let j = centre - half; j <= centre + half; j++) {
        const v = j < 0 ? this.previous : j >= n ? mono[n - 1] : mono[j];
        sum += v;
        count++;
      }
      const sample = Math.max(-1, Math.min(1, sum / count));
      this.out.push(sample < 0 ? sample * 0x8000 : sample * 0x7fff);
      this.position += this.step;
    }
    this.position -= n;
    this.previous = mono[n - 1];
    if (this.out.length >= this.block) {
      const pcm = Int16Array.from(this.out);
      this.out = [];
      this.port.postMessage(pcm.buffer, [pcm.buffer]);
    }
    return true;
  }
}

registerProcessor("pcm-worklet", PcmWorklet);
