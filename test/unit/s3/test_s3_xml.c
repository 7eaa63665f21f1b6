/*
 * The S3 XML parsers on documents captured from Ceph's RADOS Gateway (the
 * integration tests' server) and on AWS-shaped ones (extra elements,
 * url encoding, errors inside a 200), plus what the parsers must refuse:
 * a DOCTYPE (entity expansion), another root, truncated XML, oversized
 * text, runaway nesting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "s3/xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

/* rgw, list-objects-v2 prefix=p/generations/ delimiter=/ */
static const char RGW_LIST_DIRS[] =
	XML_DECL "<ListBucketResult " NS "><Name>bkt1</Name><Prefix>p/generations/</Prefix>"
	"<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
	"<CommonPrefixes><Prefix>p/generations/0123456789abcdef/</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>p/generations/fedcba9876543210/</Prefix></CommonPrefixes>"
	"<KeyCount>2</KeyCount></ListBucketResult>";

/* rgw, max-keys=1, encoding-type=url: a truncated page. */
static const char RGW_LIST_PAGE[] =
	XML_DECL "<ListBucketResult " NS "><EncodingType>url</EncodingType><Name>bkt1</Name>"
	"<Prefix>p/</Prefix><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents>"
	"<Key>p%2Fgenerations%2F0123456789abcdef%2Fsnapshots%2F00000000.snapshot.lz4</Key>"
	"<LastModified>2026-11-25T10:06:00.260Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag><Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents>"
	"<NextContinuationToken>p/generations/0123456789abcdef/snapshots/00000000.snapshot.lz4"
	"</NextContinuationToken><KeyCount>1</KeyCount></ListBucketResult>";

/* AWS-shaped: objects and prefixes mixed, owner and checksum elements, no url encoding. */
static const char AWS_LIST[] =
	XML_DECL "\n<ListBucketResult " NS ">\n  <Name>backups</Name>\n  <Prefix>db/generations/g/wal/</Prefix>\n"
	"  <KeyCount>3</KeyCount>\n  <MaxKeys>1000</MaxKeys>\n  <Delimiter>/</Delimiter>\n"
	"  <IsTruncated>false</IsTruncated>\n"
	"  <Contents>\n    <Key>db/generations/g/wal/00000000_00000000.wal.lz4</Key>\n"
	"    <LastModified>2024-02-29T23:59:59.999Z</LastModified>\n"
	"    <ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag>\n"
	"    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\n    <Size>4128</Size>\n"
	"    <Owner><ID>abc</ID><DisplayName>me</DisplayName></Owner>\n"
	"    <StorageClass>STANDARD</StorageClass>\n  </Contents>\n"
	"  <Contents>\n    <Key>db/generations/g/wal/a &amp; b.wal</Key>\n"
	"    <LastModified>1970-01-01T00:00:01Z</LastModified>\n    <Size>0</Size>\n"
	"  </Contents>\n"
	"  <CommonPrefixes>\n    <Prefix>db/generations/g/wal/sub/</Prefix>\n  </CommonPrefixes>\n"
	"</ListBucketResult>\n";

static const char RGW_INITIATE[] =
	XML_DECL "<InitiateMultipartUploadResult " NS "><Bucket>bkt1</Bucket><Key>big</Key>"
	"<UploadId>2~EYJu6Kgbw-aN2-Mcn1x2MowJPN4IgQU</UploadId></InitiateMultipartUploadResult>";

/* rgw's first answer to CompleteMultipartUpload has an empty ETag... */
static const char RGW_COMPLETE_EMPTY[] =
	XML_DECL "<CompleteMultipartUploadResult " NS "><Location>s3.localhost/bkt1/big2</Location>"
	"<Bucket>bkt1</Bucket><Key>big2</Key><ETag></ETag></CompleteMultipartUploadResult>";

/* ...and a repeated one the real ETag. */
static const char RGW_COMPLETE[] =
	XML_DECL "<CompleteMultipartUploadResult " NS "><Location>s3.localhost/bkt1/big2</Location>"
	"<Bucket>bkt1</Bucket><Key>big2</Key><ETag>a84906c3e6c3887491cbb2b8e52c7ab2-2</ETag>"
	"</CompleteMultipartUploadResult>";

/* AWS: a 200 whose body is an error (the completion failed late). */
static const char AWS_COMPLETE_ERROR[] =
	XML_DECL "\n\n<Error><Code>InternalError</Code><Message>We encountered an internal error. "
	"Please try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId>"
	"<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>";

static const char RGW_DELETE_VERBOSE[] =
	XML_DECL "<DeleteResult " NS "><Deleted><Key>nonexist</Key></Deleted><Deleted><Key>a/b</Key>"
	"</Deleted></DeleteResult>";

static const char RGW_DELETE_QUIET[] = XML_DECL "<DeleteResult " NS "></DeleteResult>";

static const char AWS_DELETE_ERRORS[] =
	XML_DECL "<DeleteResult " NS "><Deleted><Key>ok.txt</Key></Deleted>"
	"<Error><Key>locked.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
	"<Error><Key>gone.txt</Key><Code>NoSuchKey</Code></Error></DeleteResult>";

static const char RGW_SIG_ERROR[] =
	XML_DECL "<Error><Code>SignatureDoesNotMatch</Code><Message></Message>"
	"<RequestId>tx0000090d7249975ed80fb-006b06b30f-1008-default</RequestId>"
	"<HostId>1008-default-default</HostId></Error>";

static const char RGW_NO_BUCKET[] =
	XML_DECL "<Error><Code>NoSuchBucket</Code><Message></Message><BucketName>b1</BucketName>"
	"<RequestId>tx0000019dec20e77b1dfe0-006b06b285-1008-default</RequestId>"
	"<HostId>1008-default-default</HostId></Error>";

static const char AWS_WRONG_REGION[] =
	XML_DECL "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header "
	"is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-3'</Message>"
	"<Region>eu-west-3</Region><RequestId>B4Q9</RequestId><HostId>x</HostId></Error>";

static void test_list_common_prefixes(void **state)
{
	struct s3_list_page p;
	char err[256];

	assert_int_equal(s3_xml_parse_list(RGW_LIST_DIRS, strlen(RGW_LIST_DIRS), &p, NULL, err, sizeof(err)), 0);
	assert_int_equal(p.n_objects, 0);
	assert_int_equal(p.n_prefixes, 2);
	assert_string_equal(p.prefixes[0], "p/generations/0123456789abcdef/");
	assert_string_equal(p.prefixes[1], "p/generations/fedcba9876543210/");
	assert_false(p.truncated);
	assert_null(p.next_token);
	s3_list_page_free(&p);
	assert_null(p.objects);
}

static void test_list_truncated_url_encoded(void **state)
{
	struct s3_list_page p;
	char err[256];

	assert_int_equal(s3_xml_parse_list(RGW_LIST_PAGE, strlen(RGW_LIST_PAGE), &p, NULL, err, sizeof(err)), 0);
	assert_int_equal(p.n_objects, 1);
	assert_string_equal(p.objects[0].key, "p/generations/0123456789abcdef/snapshots/00000000.snapshot.lz4");
	assert_int_equal(p.objects[0].size, 3);
	/* 2026-11-25T10:06:00.260Z */
	assert_int_equal(p.objects[0].mtime_ms, 1795601160260LL);
	assert_string_equal(p.objects[0].etag, "\"764efa883dda1e11db47671c4a3bbd9e\"");
	assert_true(p.truncated);
	assert_string_equal(p.next_token, "p/generations/0123456789abcdef/snapshots/00000000.snapshot.lz4");
	s3_list_page_free(&p);
}

static void test_list_aws_shape(void **state)
{
	struct s3_list_page p;
	char err[256];

	assert_int_equal(s3_xml_parse_list(AWS_LIST, strlen(AWS_LIST), &p, NULL, err, sizeof(err)), 0);
	assert_int_equal(p.n_objects, 2);
	assert_string_equal(p.objects[0].key, "db/generations/g/wal/00000000_00000000.wal.lz4");
	assert_int_equal(p.objects[0].size, 4128);
	assert_int_equal(p.objects[0].mtime_ms, 1709251199999LL);
	assert_string_equal(p.objects[1].key, "db/generations/g/wal/a & b.wal");
	assert_int_equal(p.objects[1].size, 0);
	assert_int_equal(p.objects[1].mtime_ms, 1000);
	assert_string_equal(p.objects[1].etag, "");
	assert_int_equal(p.n_prefixes, 1);
	assert_string_equal(p.prefixes[0], "db/generations/g/wal/sub/");
	s3_list_page_free(&p);
}

static void test_list_bad(void **state)
{
	struct s3_list_page p;
	struct s3_error e;
	char err[256];
	static const char *bad[] = {
		"",
		"not xml",
		XML_DECL "<ListBucketResult><Contents><Key>a</Key>",          /* truncated */
		XML_DECL "<ListAllMyBucketsResult></ListAllMyBucketsResult>", /* another root */
		XML_DECL "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
		XML_DECL "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
		XML_DECL "<ListBucketResult><Contents><Key>a</Key><Size>12x</Size></Contents></ListBucketResult>",
		XML_DECL "<ListBucketResult><Contents><Key>a</Key><LastModified>yesterday</LastModified>"
			 "</Contents></ListBucketResult>",
		XML_DECL "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		/* Entity expansion must never start. */
		"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
		"\"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]><ListBucketResult>"
		"<Contents><Key>&lol2;</Key></Contents></ListBucketResult>",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0x5a, sizeof(p));
		err[0] = '\0';
		int rc = s3_xml_parse_list(bad[i], strlen(bad[i]), &p, &e, err, sizeof(err));
		if (rc != -EBADMSG)
			fail_msg("document %zu: rc %d", i, rc);
		if (strstr(err, "ListBucketResult") == NULL)
			fail_msg("document %zu: message \"%s\" does not name the document", i, err);
	}
}

static void test_list_limits(void **state)
{
	struct s3_list_page p;
	char err[256], *doc;
	size_t n = S3_XML_TEXT_MAX + 200, off = 0;

	/* A key longer than any text node may be. */
	doc = malloc(n + 200);
	assert_non_null(doc);
	off += (size_t)sprintf(doc, "<ListBucketResult><Contents><Key>");
	memset(doc + off, 'k', S3_XML_TEXT_MAX + 1);
	off += S3_XML_TEXT_MAX + 1;
	off += (size_t)sprintf(doc + off, "</Key></Contents></ListBucketResult>");
	assert_int_equal(s3_xml_parse_list(doc, off, &p, NULL, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "longer"));

	/* Nesting deeper than the parser keeps. */
	off = (size_t)sprintf(doc, "<ListBucketResult>");
	for (int i = 0; i < S3_XML_DEPTH_MAX; i++)
		off += (size_t)sprintf(doc + off, "<a>");
	assert_int_equal(s3_xml_parse_list(doc, off, &p, NULL, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "deeper"));
	free(doc);
}

static void test_list_many(void **state)
{
	/* 1000 objects, as a full page holds: everything kept, in order. */
	size_t cap = 1000 * 200 + 200, off = 0;
	char *doc = malloc(cap), err[256], want[64];
	struct s3_list_page p;

	assert_non_null(doc);
	off += (size_t)snprintf(doc, cap, "<ListBucketResult><IsTruncated>true</IsTruncated>");
	for (int i = 0; i < 1000; i++)
		off += (size_t)snprintf(doc + off, cap - off,
					"<Contents><Key>w/%08x_00000000.wal.lz4</Key><Size>%d</Size></Contents>", i, i);
	off += (size_t)snprintf(doc + off, cap - off,
				"<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>");
	assert_int_equal(s3_xml_parse_list(doc, off, &p, NULL, err, sizeof(err)), 0);
	assert_int_equal(p.n_objects, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(want, sizeof(want), "w/%08x_00000000.wal.lz4", i);
		assert_string_equal(p.objects[i].key, want);
		assert_int_equal(p.objects[i].size, i);
	}
	assert_string_equal(p.next_token, "tok");
	s3_list_page_free(&p);
	free(doc);
}

static void test_initiate(void **state)
{
	char err[256], *id = (char *)"untouched";
	struct s3_error e;
	static const char empty[] = "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>";

	assert_int_equal(s3_xml_parse_initiate(RGW_INITIATE, strlen(RGW_INITIATE), &id, &e, err, sizeof(err)), 0);
	assert_string_equal(id, "2~EYJu6Kgbw-aN2-Mcn1x2MowJPN4IgQU");
	free(id);
	id = (char *)"untouched";
	assert_int_equal(s3_xml_parse_initiate(empty, strlen(empty), &id, &e, err, sizeof(err)), -EBADMSG);
	assert_string_equal(id, "untouched");
	assert_non_null(strstr(err, "UploadId"));
	assert_int_equal(s3_xml_parse_initiate(RGW_SIG_ERROR, strlen(RGW_SIG_ERROR), &id, &e, err, sizeof(err)),
			 -EREMOTEIO);
	assert_string_equal(e.code, "SignatureDoesNotMatch");
}

static void test_complete(void **state)
{
	char err[256], *etag;
	struct s3_error e;

	assert_int_equal(s3_xml_parse_complete(RGW_COMPLETE_EMPTY, strlen(RGW_COMPLETE_EMPTY), &etag, &e, err,
					       sizeof(err)), 0);
	assert_string_equal(etag, "");
	free(etag);
	assert_int_equal(s3_xml_parse_complete(RGW_COMPLETE, strlen(RGW_COMPLETE), &etag, &e, err, sizeof(err)), 0);
	assert_string_equal(etag, "a84906c3e6c3887491cbb2b8e52c7ab2-2");
	free(etag);
	memset(&e, 0x5a, sizeof(e));
	assert_int_equal(s3_xml_parse_complete(AWS_COMPLETE_ERROR, strlen(AWS_COMPLETE_ERROR), &etag, &e, err,
					       sizeof(err)), -EREMOTEIO);
	assert_string_equal(e.code, "InternalError");
	assert_string_equal(e.message, "We encountered an internal error. Please try again.");
	assert_string_equal(e.request_id, "656c76696e6727732072657175657374");
	assert_string_equal(e.region, "");
}

static void test_delete(void **state)
{
	struct s3_delete_result r;
	char err[256];

	assert_int_equal(s3_xml_parse_delete(RGW_DELETE_VERBOSE, strlen(RGW_DELETE_VERBOSE), &r, NULL, err,
					     sizeof(err)), 0);
	assert_int_equal(r.n_deleted, 2);
	assert_int_equal(r.n_failures, 0);
	s3_delete_result_free(&r);
	assert_int_equal(s3_xml_parse_delete(RGW_DELETE_QUIET, strlen(RGW_DELETE_QUIET), &r, NULL, err,
					     sizeof(err)), 0);
	assert_int_equal(r.n_deleted, 0);
	assert_int_equal(r.n_failures, 0);
	s3_delete_result_free(&r);
	assert_int_equal(s3_xml_parse_delete(AWS_DELETE_ERRORS, strlen(AWS_DELETE_ERRORS), &r, NULL, err,
					     sizeof(err)), 0);
	assert_int_equal(r.n_deleted, 1);
	assert_int_equal(r.n_failures, 2);
	assert_string_equal(r.failures[0].key, "locked.txt");
	assert_string_equal(r.failures[0].code, "AccessDenied");
	assert_string_equal(r.failures[0].message, "Access Denied");
	assert_string_equal(r.failures[1].key, "gone.txt");
	assert_string_equal(r.failures[1].code, "NoSuchKey");
	assert_string_equal(r.failures[1].message, "");
	s3_delete_result_free(&r);
}

static void test_error(void **state)
{
	struct s3_error e;

	assert_int_equal(s3_xml_parse_error(RGW_SIG_ERROR, strlen(RGW_SIG_ERROR), &e), 0);
	assert_string_equal(e.code, "SignatureDoesNotMatch");
	assert_string_equal(e.message, "");
	assert_string_equal(e.request_id, "tx0000090d7249975ed80fb-006b06b30f-1008-default");
	assert_int_equal(s3_xml_parse_error(RGW_NO_BUCKET, strlen(RGW_NO_BUCKET), &e), 0);
	assert_string_equal(e.code, "NoSuchBucket");
	assert_string_equal(e.bucket, "b1");
	assert_int_equal(s3_xml_parse_error(AWS_WRONG_REGION, strlen(AWS_WRONG_REGION), &e), 0);
	assert_string_equal(e.code, "AuthorizationHeaderMalformed");
	assert_string_equal(e.region, "eu-west-3");
	/* Not an error document: zeroed, -EBADMSG. */
	assert_int_equal(s3_xml_parse_error(RGW_COMPLETE, strlen(RGW_COMPLETE), &e), -EBADMSG);
	assert_string_equal(e.code, "");
	assert_int_equal(s3_xml_parse_error("", 0, &e), -EBADMSG);
	assert_int_equal(s3_xml_parse_error("<html>502 Bad Gateway</html>", 28, &e), -EBADMSG);
	/* A long message is cut, not refused. */
	{
		char doc[1024];
		int n = snprintf(doc, sizeof(doc), "<Error><Code>X</Code><Message>%0600d</Message></Error>", 7);
		assert_int_equal(s3_xml_parse_error(doc, (size_t)n, &e), 0);
		assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
	}
}

static void test_time(void **state)
{
	int64_t ms = 42;

	assert_int_equal(s3_xml_parse_time("2026-11-25T10:06:00.260Z", &ms), 0);
	assert_int_equal(ms, 1795601160260LL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T10:06:00Z", &ms), 0);
	assert_int_equal(ms, 1795601160000LL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T10:06:00.5Z", &ms), 0);
	assert_int_equal(ms, 1795601160500LL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T12:06:00.000+02:00", &ms), 0);
	assert_int_equal(ms, 1795601160000LL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T08:06:00-02:00", &ms), 0);
	assert_int_equal(ms, 1795601160000LL);
	assert_int_equal(s3_xml_parse_time("1970-01-01T00:00:00.000Z", &ms), 0);
	assert_int_equal(ms, 0);
	ms = 42;
	assert_int_equal(s3_xml_parse_time("2026-11-25 10:06:00Z", &ms), -EINVAL);
	assert_int_equal(s3_xml_parse_time("2026-13-25T10:06:00Z", &ms), -EINVAL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T10:06:00", &ms), -EINVAL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T10:06:00.Z", &ms), -EINVAL);
	assert_int_equal(s3_xml_parse_time("2026-11-25T10:06:00ZZ", &ms), -EINVAL);
	assert_int_equal(s3_xml_parse_time("Wed, 25 Nov 2026 10:04:14 GMT", &ms), -EINVAL);
	assert_int_equal(ms, 42);
}

static void test_bodies(void **state)
{
	struct s3_part parts[2] = {{1, "\"ad1b88d173ae1a74acb0a888af66035c\""}, {2, "\"9fe7\""}};
	const char *keys[3] = {"p/a.wal.lz4", "p/b&c<d>.wal", "p/'q\""};
	const char *many[1001];
	char *body;
	size_t len;

	assert_int_equal(s3_xml_complete_body(parts, 2, &body, &len), 0);
	assert_int_equal(len, strlen(body));
	assert_string_equal(body,
			    "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			    "<Part><PartNumber>1</PartNumber><ETag>&quot;ad1b88d173ae1a74acb0a888af66035c&quot;</ETag></Part>"
			    "<Part><PartNumber>2</PartNumber><ETag>&quot;9fe7&quot;</ETag></Part>"
			    "</CompleteMultipartUpload>");
	free(body);
	assert_int_equal(s3_xml_delete_body(keys, 3, &body, &len), 0);
	assert_string_equal(body,
			    "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
			    "<Object><Key>p/a.wal.lz4</Key></Object>"
			    "<Object><Key>p/b&amp;c&lt;d&gt;.wal</Key></Object>"
			    "<Object><Key>p/&apos;q&quot;</Key></Object></Delete>");
	free(body);
	for (size_t i = 0; i < 1001; i++)
		many[i] = "k";
	assert_int_equal(s3_xml_delete_body(many, 1000, &body, &len), 0);
	free(body);
	assert_int_equal(s3_xml_delete_body(many, 1001, &body, &len), -EINVAL);
	assert_int_equal(s3_xml_delete_body(many, 0, &body, &len), -EINVAL);
	assert_int_equal(s3_xml_complete_body(parts, 0, &body, &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_common_prefixes),
		cmocka_unit_test(test_list_truncated_url_encoded),
		cmocka_unit_test(test_list_aws_shape),
		cmocka_unit_test(test_list_bad),
		cmocka_unit_test(test_list_limits),
		cmocka_unit_test(test_list_many),
		cmocka_unit_test(test_initiate),
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_bodies),
	};
	return cmocka_run_group_tests_name("s3_xml", tests, NULL, NULL);
}
