/*
 * s3_sigv4_test.c - the SigV4 signer against AWS's published examples:
 * the four S3 header-based examples of "Signature Calculations for the
 * Authorization Header" (GET Object with Range, PUT Object, GET Bucket
 * lifecycle, GET Bucket list objects) and vectors of the generic SigV4 test
 * suite (get-vanilla, get-vanilla-query-order-key-case).  Also the URI
 * encoder and the XML escaper the backend builds requests with.
 */
#include <string.h>

#include "t.h"
#include "cairn/err.h"
#include "s3_int.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static void check_sig(const s3_sign_in *in, const char *want_sig,
		      const char *want_creq)
{
	s3_buf auth = {0}, creq = {0};

	CHECK_OK(s3_sigv4_sign(in, &auth, &creq));
	if (!auth.p)
		return;
	printf("%s\n", auth.p);
	CHECK(strstr(auth.p, want_sig) != NULL);
	if (want_creq) {
		CHECK(creq.p && strcmp(creq.p, want_creq) == 0);
		if (creq.p && strcmp(creq.p, want_creq))
			printf("got canonical request:\n%s\n", creq.p);
	}
	/* Invariant: the secret never appears in what the signer outputs. */
	CHECK(strstr(auth.p, in->secret_key) == NULL);
	CHECK(!creq.p || strstr(creq.p, in->secret_key) == NULL);
	s3_buf_free(&auth);
	s3_buf_free(&creq);
}

int main(void)
{
	{	/* Example: GET Object (first 10 bytes of test.txt). */
		s3_hdr h[] = {
			{"Host", "examplebucket.s3.amazonaws.com"},
			{"Range", "bytes=0-9"},
			{"x-amz-content-sha256", S3_EMPTY_SHA256},
			{"x-amz-date", "20130524T000000Z"},
		};
		s3_sign_in in = {"GET", "/test.txt", "", h, 4, S3_EMPTY_SHA256,
				 "s3", "us-east-1", "20130524T000000Z", AK, SK};
		check_sig(&in,
			  "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
			  "aws4_request, SignedHeaders=host;range;"
			  "x-amz-content-sha256;x-amz-date, Signature="
			  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
			  "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
			  "range:bytes=0-9\nx-amz-content-sha256:" S3_EMPTY_SHA256
			  "\nx-amz-date:20130524T000000Z\n\n"
			  "host;range;x-amz-content-sha256;x-amz-date\n"
			  S3_EMPTY_SHA256);
	}
	{	/* Example: PUT Object ("test$file.text", storage class). */
		s3_buf uri = {0};
		s3_buf_adds(&uri, "/");
		s3_buf_add_uri(&uri, "test$file.text", 1);
		CHECK(uri.p && strcmp(uri.p, "/test%24file.text") == 0);
		s3_hdr h[] = {
			{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
			{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
			{"Host", "examplebucket.s3.amazonaws.com"},
			{"x-amz-date", "20130524T000000Z"},
			{"x-amz-content-sha256",
			 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
		};
		s3_sign_in in = {"PUT", uri.p, "", h, 5,
				 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
				 "s3", "us-east-1", "20130524T000000Z", AK, SK};
		check_sig(&in,
			  "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
			  "x-amz-storage-class, Signature="
			  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
			  NULL);
		s3_buf_free(&uri);
	}
	{	/* Example: GET Bucket lifecycle. */
		s3_hdr h[] = {
			{"Host", "examplebucket.s3.amazonaws.com"},
			{"x-amz-date", "20130524T000000Z"},
			{"x-amz-content-sha256", S3_EMPTY_SHA256},
		};
		s3_sign_in in = {"GET", "/", "lifecycle=", h, 3, S3_EMPTY_SHA256,
				 "s3", "us-east-1", "20130524T000000Z", AK, SK};
		check_sig(&in, "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
			  NULL);
	}
	{	/* Example: GET Bucket (List Objects), max-keys=2&prefix=J. */
		s3_hdr h[] = {
			{"Host", "examplebucket.s3.amazonaws.com"},
			{"x-amz-date", "20130524T000000Z"},
			{"x-amz-content-sha256", S3_EMPTY_SHA256},
		};
		s3_sign_in in = {"GET", "/", "max-keys=2&prefix=J", h, 3,
				 S3_EMPTY_SHA256, "s3", "us-east-1",
				 "20130524T000000Z", AK, SK};
		check_sig(&in, "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
			  NULL);
	}
	{	/* SigV4 test suite: get-vanilla. */
		s3_hdr h[] = {
			{"Host", "example.amazonaws.com"},
			{"X-Amz-Date", "20150830T123600Z"},
		};
		s3_sign_in in = {"GET", "/", "", h, 2, S3_EMPTY_SHA256, "service",
				 "us-east-1", "20150830T123600Z", "AKIDEXAMPLE",
				 "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
		check_sig(&in,
			  "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
			  "service/aws4_request, SignedHeaders=host;x-amz-date, "
			  "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
			  "GET\n/\n\nhost:example.amazonaws.com\n"
			  "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
			  S3_EMPTY_SHA256);
		/* get-vanilla-query-order-key-case: the caller sorts. */
		in.canon_query = "Param1=value1&Param2=value2";
		check_sig(&in, "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
			  NULL);
	}
	{	/* Header values: trimmed, inner blanks collapsed. */
		s3_hdr h[] = {{"My-Header1", "  a   b   c  "}};
		s3_sign_in in = {"GET", "/", "", h, 1, S3_EMPTY_SHA256, "s3",
				 "us-east-1", "20150830T123600Z", "AK", "SK1234"};
		s3_buf auth = {0}, creq = {0};
		CHECK_OK(s3_sigv4_sign(&in, &auth, &creq));
		CHECK(creq.p && strstr(creq.p, "\nmy-header1:a b c\n"));
		s3_buf_free(&auth);
		s3_buf_free(&creq);
	}
	{	/* URI encoding: unreserved kept, '/' by choice, UTF-8 bytes. */
		s3_buf b = {0};
		s3_buf_add_uri(&b, "a b/c~d-e_f.g+h=i&\xc3\xa9", 1);
		CHECK(b.p && strcmp(b.p, "a%20b/c~d-e_f.g%2Bh%3Di%26%C3%A9") == 0);
		b.len = 0;
		s3_buf_add_uri(&b, "x/y", 0);
		CHECK(b.p && strcmp(b.p, "x%2Fy") == 0);
		b.len = 0;
		s3_buf_add_xml(&b, "<a&'\">");
		CHECK(b.p && strcmp(b.p, "&lt;a&amp;&apos;&quot;&gt;") == 0);
		s3_buf_free(&b);
	}
	{	/* Dates and base64. */
		char d[17], b64[25];
		s3_amz_date(1369353600, d);
		CHECK(strcmp(d, "20130524T000000Z") == 0);
		s3_base64((const uint8_t *)"\x00\x01\x02\x03\x04\x05\x06\x07\x08"
			  "\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16, b64);
		CHECK(strcmp(b64, "AAECAwQFBgcICQoLDA0ODw==") == 0);
	}
	{	/* Too many headers is an error, not an overflow. */
		s3_hdr h[40];
		for (int i = 0; i < 40; i++)
			h[i] = (s3_hdr){"x-a", "b"};
		s3_sign_in in = {"GET", "/", "", h, 40, S3_EMPTY_SHA256, "s3",
				 "us-east-1", "20150830T123600Z", "AK", "SK1234"};
		s3_buf auth = {0};
		CHECK_RC(s3_sigv4_sign(&in, &auth, NULL), CAIRN_E_INVAL);
		s3_buf_free(&auth);
	}
	return t_done();
}
