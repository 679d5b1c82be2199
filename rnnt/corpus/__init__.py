"""Training-corpus builder: synthesized English speech plus the real recordings in `../shared/data/`.

Modules (numpy / scipy / soundfile only; no TensorFlow):

- `reserved`: where the shared data lives, and the material that must never be trained on.
- `text_sources`: sentences from the shared text, Debian packages and generated numbers / dates / letters.
- `voices`: the offline TTS voices (espeak-ng accents x variants, flite, festival) and the dev hold-out.
- `synth`: one utterance from one voice, as float32 mono 16 kHz.
- `augment`: speed, noise, babble, reverberation, telephone band, gain (offline or on the fly).
- `real`: the real recordings meant for training (FSDD, speechocean762) and their dev hold-out.
- `build`: the planner and the parallel, resumable, deterministic builder behind `rnnt corpus build`.
"""
