-- Every change to tenants or domains, whoever makes it (Botora, Django
-- admin, psql), is announced on channel botora_tenants so that every
-- Botora instance drops what it cached. The payload names the tenant id
-- and, for domains, the old and new domain.

CREATE OR REPLACE FUNCTION botora_notify_tenant_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_TABLE_NAME = 'tenants_domain' THEN
        payload := jsonb_build_object(
            'table', 'domain',
            'tenant_id', COALESCE(NEW.tenant_id, OLD.tenant_id),
            'old_tenant_id', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.tenant_id END,
            'domain', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.domain END,
            'old_domain', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.domain END);
    ELSE
        payload := jsonb_build_object(
            'table', 'client',
            'tenant_id', COALESCE(NEW.id, OLD.id),
            'old_tenant_id', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.id END);
    END IF;
    PERFORM pg_notify('botora_tenants', payload::text);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS botora_tenants_client_notify ON tenants_client;
CREATE TRIGGER botora_tenants_client_notify
    AFTER INSERT OR UPDATE OR DELETE ON tenants_client
    FOR EACH ROW EXECUTE FUNCTION botora_notify_tenant_change();

DROP TRIGGER IF EXISTS botora_tenants_domain_notify ON tenants_domain;
CREATE TRIGGER botora_tenants_domain_notify
    AFTER INSERT OR UPDATE OR DELETE ON tenants_domain
    FOR EACH ROW EXECUTE FUNCTION botora_notify_tenant_change();

-- TRUNCATE has no rows: announce it as "everything changed".
CREATE OR REPLACE FUNCTION botora_notify_tenant_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('botora_tenants', '{"table": "all"}');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS botora_tenants_client_truncate ON tenants_client;
CREATE TRIGGER botora_tenants_client_truncate
    AFTER TRUNCATE ON tenants_client
    FOR EACH STATEMENT EXECUTE FUNCTION botora_notify_tenant_truncate();

DROP TRIGGER IF EXISTS botora_tenants_domain_truncate ON tenants_domain;
CREATE TRIGGER botora_tenants_domain_truncate
    AFTER TRUNCATE ON tenants_domain
    FOR EACH STATEMENT EXECUTE FUNCTION botora_notify_tenant_truncate();
