-- The services registry: nova's `services` table plus `version` (the RPC API version served).
CREATE TABLE services (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    host            VARCHAR(255) NOT NULL,
    `binary`        VARCHAR(255) NOT NULL,
    topic           VARCHAR(255) NOT NULL,
    report_count    BIGINT NOT NULL DEFAULT 0,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_reason VARCHAR(255),
    version         VARCHAR(32),
    created_at      DATETIME(6) NOT NULL,
    updated_at      DATETIME(6),
    deleted_at      DATETIME(6),
    deleted         BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT uniq_services0host0binary0deleted UNIQUE (host, `binary`, deleted)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
