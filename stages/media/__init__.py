"""The video itself: probe, decode into chunks (deinterlaced as asked), the lossless chunk files, background decoding,
encode and mux, output codecs and containers, the bundled ffmpeg, audio (mix, loudness) and previews."""
