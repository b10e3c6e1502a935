"""The video itself: probe, decode into chunks, the lossless chunk files, background decoding,
encode and mux, the bundled ffmpeg, audio (mix, loudness) and previews."""
