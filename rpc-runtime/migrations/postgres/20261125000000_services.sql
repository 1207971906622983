-- The services registry: nova's `services` table plus `version` (the RPC API version served).
CREATE TABLE services (
    id              BIGSERIAL PRIMARY KEY,
    host            VARCHAR(255) NOT NULL,
    "binary"        VARCHAR(255) NOT NULL,
    topic           VARCHAR(255) NOT NULL,
    report_count    BIGINT NOT NULL DEFAULT 0,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_reason VARCHAR(255),
    version         VARCHAR(32),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP,
    deleted_at      TIMESTAMP,
    deleted         BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT uniq_services0host0binary0deleted UNIQUE (host, "binary", deleted)
);
