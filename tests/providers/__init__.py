"""Real providers against local fake servers: OpenAI-compatible text, BFL, OpenAI images, songs."""
