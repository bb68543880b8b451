-- The checksum type (FULL_OBJECT or COMPOSITE) chosen when a multipart upload starts.
ALTER TABLE uploads ADD COLUMN checksum_type TEXT;
