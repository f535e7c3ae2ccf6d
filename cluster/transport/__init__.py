"""Aeron's transport in pure Python: frames, log buffers, channel URIs, publications and subscriptions.

It knows nothing of consensus, archive or services (``lint-imports`` holds that), and speaks Aeron's
real wire protocol: frame layouts come from the generated ``generated.aeron_transport_frames`` codecs.
"""
