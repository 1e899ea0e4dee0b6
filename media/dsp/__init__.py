"""DSP kernels of the media engine, one per module, each vectorised over all channels.

- `media.dsp.dtmf`: in-band DTMF detector (ITU-T Q.23/Q.24), `DtmfDetector` and
  `detect_digits`; ``python -m media.dsp.dtmf FILE.wav`` prints a file's digits.
- `media.dsp.mixer`: conference mixer, `Mixer` (plan on membership change, `mix_into`
  per tick) and the one-shot `mix`; used by `media.conference`.

Nothing is imported here, so that ``python -m media.dsp.<kernel>`` runs each module once.
"""
