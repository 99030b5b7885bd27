# Makefile for pg_dtx (PGXS)
#
#   make                 build the extension
#   make install         install it into the PostgreSQL found by pg_config
#   make test            every test tier on throw-away servers, on the host's
#                        PostgreSQL 15 and (regress, TAP) on 17 and 18 in chroots
#                        (see test/run_tests.sh); `make test PG=17` for one version
#   make demo            three throw-away servers and an atomic money transfer (see test/demo.sh)
#   make bench           the benchmark against postgres_fdw and dblink (see bench/README.md)
#   make mutation        the mutation check of the tests (long; see test/README.md)
#   make package         the Debian package in packages/, checked and tested installed
#                        (see test/package.sh; PG_CONFIG=... for another major version)
#
# The build also works from another directory (make -f SRC/Makefile VPATH=SRC,
# as pg_buildext builds Debian packages in build-<major>/).

# The source tree: the directory of this Makefile.
srcroot := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

EXTENSION = pg_dtx
MODULE_big = pg_dtx
OBJS = \
	src/pg_dtx.o \
	src/connection.o \
	src/fdw_options.o \
	src/catalog.o \
	src/gid.o \
	src/coordinator.o \
	src/shared_state.o \
	src/decision.o \
	src/identity.o \
	src/remote_xact.o \
	src/remote_exec.o \
	src/fdw_guard.o \
	src/resolver.o \
	src/launcher.o \
	src/ddl_guard.o \
	src/stats.o \
	src/deadlock.o \
	src/stmt_cache.o

DATA = $(patsubst $(srcroot)/%,%,$(wildcard $(srcroot)/sql/pg_dtx--*.sql))

# pg_regress: the inputs are sql/<test>.sql, the outputs expected/<test>.out
REGRESS = dtx_setup dtx_basic dtx_params dtx_driver_params dtx_stmt_cache dtx_savepoints dtx_errors dtx_resolver dtx_ops dtx_locks dtx_guarantees dtx_ddl_guard dtx_send dtx_upgrade
REGRESS_OPTS = --inputdir=$(srcroot) --temp-config=$(srcroot)/test/regress.conf --temp-instance=tmp_check_regress

# Server headers are system headers here so that -Wextra judges only our code.
PG_CPPFLAGS = -isystem $(includedir_server) -isystem $(includedir_internal) -isystem $(libpq_srcdir)
PG_CFLAGS = -Wall -Wextra -Werror
SHLIB_LINK_INTERNAL = $(libpq)

# No LLVM bitcode: JIT inlining is of no use for this code and needs clang.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The PostgreSQL major versions `make test` covers (test/lib/chroot.sh).
PG ?= 15 17 18

.PHONY: test demo bench package mutation
test:
	bash test/run_tests.sh --pg "$(PG)"

mutation:
	bash test/run_tests.sh --only mutation

demo:
	bash test/demo.sh

bench:
	bash bench/run.sh

package:
	bash $(srcroot)/test/package.sh --out packages

# PGXS of distribution packages tracks no header dependencies: every object
# depends on every header of the project (they are few).
$(OBJS): $(wildcard $(srcroot)/src/*.h)

# A build in another directory puts the objects in its src/.
ifdef VPATH
$(shell mkdir -p src)
endif
