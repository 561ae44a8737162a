-- A product page may offer variants (sizes, shades): each is a product of its own, with the
-- same URL. '' is "no variant", so the unique index compares it as a value.
ALTER TABLE products ADD COLUMN variant TEXT NOT NULL DEFAULT '';
DROP INDEX products_url_key;
CREATE UNIQUE INDEX products_url_key ON products (storefront_id, variant, url);
