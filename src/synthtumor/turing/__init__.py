"""Visual Turing test: build a blinded reader study, serve it locally, report the answers."""
