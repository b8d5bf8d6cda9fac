"""S3 image store: the images, inputs and ingested objects of the bucket."""

from __future__ import annotations

from typing import Any

from imagemint.errors import NotFound


class S3ImageStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put(self, key: str, data: bytes, media_type: str, metadata: dict[str, str] | None = None) -> None:
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=data, ContentType=media_type, Metadata=metadata or {}
        )

    def get(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            raise NotFound(f"No object {key}") from None

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            r = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError:
            return None
        return {
            "size": r["ContentLength"],
            "content_type": r.get("ContentType"),
            "metadata": r.get("Metadata", {}),
        }

    def url(self, key: str, expires_in: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )
