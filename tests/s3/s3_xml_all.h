/*
 * s3_xml_all.h - run every S3 XML parser over one buffer: the body of the
 * libFuzzer target (s3_xml_fuzz.c) and of the corpus replay in
 * s3_xml_test.c.  Returns how many parsers accepted the input.
 */
#ifndef CAIRN_S3_XML_ALL_H
#define CAIRN_S3_XML_ALL_H

#include "cairn/objstore.h"
#include "s3_int.h"


static inline int s3_xml_all(const char *buf, size_t len)
{
	static const char *const keys[] = {"a", "b", "a&b"};
	char upid[CAIRN_UPLOAD_ID_MAX];
	s3_xml_error e;
	cairn_obj_list l;
	int rcs[3], is_err, ok = 0;

	if (!s3_xml_parse_error(buf, len, &e))
		ok++;
	if (!s3_xml_parse_list(buf, len, "p/", 1000, &l)) {
		ok++;
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i].key);
		free(l.v);
		free(l.next);
	}
	if (!s3_xml_parse_upload_id(buf, len, upid))
		ok++;
	if (!s3_xml_parse_complete(buf, len, &is_err, &e))
		ok++;
	if (!s3_xml_parse_delete(buf, len, "p/", keys, 3, rcs))
		ok++;
	return ok;
}

#endif
