-- The "one new migration" of benches/scale.sh: a column and an index on
-- every tenant's posts. Built in only with the `bench-migration` feature.
ALTER TABLE blog_post ADD COLUMN IF NOT EXISTS slug varchar(200) NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS blog_post_slug_idx ON blog_post (slug);
