"""Before `make serve` starts its processes: are the services there? In plain words.

PostgreSQL: the database of DATABASE_URL is created when the server is reachable and the
database does not exist yet (as `createdb` would). Redis: a PING. Exits non-zero with
what to do when one is missing, instead of a traceback from every process at once.
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.utils import OperationalError


class Command(BaseCommand):
    help = "Check that PostgreSQL and Redis answer (creating the database if missing)."

    def handle(self, *args, **options) -> None:
        self._database()
        self._redis()
        self.stdout.write("PostgreSQL and Redis answer.")

    def _database(self) -> None:
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            return
        try:
            connection.ensure_connection()
            return
        except OperationalError as exc:
            if "does not exist" not in str(exc):
                raise CommandError(
                    f"PostgreSQL at {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432} "
                    "does not answer. Start it, or set DATABASE_URL "
                    "(postgres://user@host:5432/name)."
                ) from None
        import psycopg
        from psycopg import sql

        params = {
            "host": db.get("HOST") or None,
            "port": db.get("PORT") or None,
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "dbname": "postgres",
            "autocommit": True,
        }
        try:
            with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
        except psycopg.Error as exc:
            raise CommandError(
                f"The database {db['NAME']!r} does not exist and could not be created "
                f"({type(exc).__name__}). Create it, or set DATABASE_URL."
            ) from None
        self.stdout.write(f"Created the database {db['NAME']!r}.")

    def _redis(self) -> None:
        url = settings.REDIS_URL
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError:
            raise CommandError(
                "Redis does not answer at REDIS_URL. Start it (redis-server), or set REDIS_URL "
                "(redis://host:6379/0)."
            ) from None
