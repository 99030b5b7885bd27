/*-------------------------------------------------------------------------
 *
 * fdw_options.h
 *	  The foreign-data wrapper dtx: option validation, server and user
 *	  mapping look-ups, privilege checks and libpq connection parameters.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_FDW_OPTIONS_H
#define DTX_FDW_OPTIONS_H

#include "foreign/foreign.h"
#include "libpq-fe.h"

extern Oid	DtxResolveServer(const char *servername, Oid userid);
extern Oid	DtxMappingFor(Oid serverid, Oid userid, const char **servername);
extern int	DtxCollectConnParams(ForeignServer *server, UserMapping *um,
								 const char **keywords, const char **values,
								 int max);
extern bool DtxConnParamGiven(const char **keywords, int n, const char *name);
extern void DtxCheckPasswordGiven(ForeignServer *server, UserMapping *um, Oid userid);
extern void DtxCheckPasswordUsed(PGconn *conn, ForeignServer *server,
								 UserMapping *um, Oid userid);
extern bool DtxMappingExists(Oid userid, Oid serverid);
extern bool DtxServerIsParticipantKind(ForeignServer *server);

#endif							/* DTX_FDW_OPTIONS_H */
