-- A long recording's transcription progress (issue 23: the live channel's chunk progress):
-- how many of its chunks are transcribed, of how many. NULL until a transcription cuts the
-- audio into chunks (audio within the provider's upload limit is one request).
ALTER TABLE sessions ADD COLUMN chunks_done BIGINT;
ALTER TABLE sessions ADD COLUMN chunks_total BIGINT;
