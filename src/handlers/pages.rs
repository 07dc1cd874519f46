//! DRF's page-number pagination: `?page=N` (1-based), `count`, and
//! absolute `next`/`previous` links, the link to page 1 without `page`.

use serde::Serialize;
use serde_json::Value;

use crate::http::ApiError;
use crate::http::body::query_param;

/// The page a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub number: i64,
    /// Items per page.
    pub size: i64,
}

impl PageRequest {
    /// Reads `?page=`; absent is page 1. Zero, negative or not a number is
    /// `404 Invalid page.`
    pub fn from_query(query: Option<&str>, size: u32) -> Result<PageRequest, ApiError> {
        let number = match query_param(query, "page") {
            None => 1,
            Some(raw) if raw.is_empty() => 1,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ApiError::InvalidPage)?,
        };
        Ok(PageRequest {
            number,
            size: i64::from(size),
        })
    }

    /// Rows to skip; a page too far to count is past any end.
    pub fn offset(&self) -> Result<i64, ApiError> {
        (self.number - 1)
            .checked_mul(self.size)
            .ok_or(ApiError::InvalidPage)
    }

    /// Checks the page exists once the total is known. Page 1 always does.
    pub fn check(&self, count: i64) -> Result<(), ApiError> {
        let pages = ((count + self.size - 1) / self.size).max(1);
        match self.number <= pages {
            true => Ok(()),
            false => Err(ApiError::InvalidPage),
        }
    }
}

/// A page as DRF writes it.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// All items, every page.
    pub count: i64,
    /// Link to the next page, or null.
    pub next: Option<String>,
    /// Link to the previous page, or null.
    pub previous: Option<String>,
    /// This page's items.
    pub results: Vec<T>,
}

impl<T: Serialize> Page<T> {
    /// The page `request` of `count` items, linked from `base` (an absolute
    /// URL without query).
    pub fn new(request: PageRequest, count: i64, base: &str, results: Vec<T>) -> Page<T> {
        let has_next = request.number * request.size < count;
        let next = has_next.then(|| format!("{base}?page={}", request.number + 1));
        let previous = match request.number {
            1 => None,
            2 => Some(base.to_owned()),
            n => Some(format!("{base}?page={}", n - 1)),
        };
        Page {
            count,
            next,
            previous,
            results,
        }
    }

    /// The page as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn page_numbers() {
        assert_eq!(PageRequest::from_query(None, 20).unwrap().number, 1);
        assert_eq!(
            PageRequest::from_query(Some("page=3"), 20).unwrap().number,
            3
        );
        for bad in [
            "page=0",
            "page=-1",
            "page=abc",
            "page=1.5",
            "page=99999999999999999999",
        ] {
            assert!(PageRequest::from_query(Some(bad), 20).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_follow_drf() {
        let base = "http://acme.test/api/posts/";
        let page = |n| PageRequest {
            number: n,
            size: 20,
        };
        let first: Page<u8> = Page::new(page(1), 45, base, vec![]);
        assert_eq!(
            first.next.as_deref(),
            Some("http://acme.test/api/posts/?page=2")
        );
        assert_eq!(first.previous, None);
        let second: Page<u8> = Page::new(page(2), 45, base, vec![]);
        assert_eq!(second.previous.as_deref(), Some(base));
        let third: Page<u8> = Page::new(page(3), 45, base, vec![]);
        assert_eq!(third.next, None);
        assert_eq!(
            third.previous.as_deref(),
            Some("http://acme.test/api/posts/?page=2")
        );
    }

    #[test]
    fn page_bounds() {
        let page = |n| PageRequest {
            number: n,
            size: 20,
        };
        assert!(page(1).check(0).is_ok());
        assert!(page(2).check(20).is_err());
        assert!(page(2).check(21).is_ok());
        assert!(
            PageRequest {
                number: i64::MAX,
                size: 20
            }
            .offset()
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn every_item_is_on_exactly_one_page(count in 0i64..500, size in 1i64..50) {
            let pages = ((count + size - 1) / size).max(1);
            let mut seen = 0;
            for number in 1..=pages {
                let request = PageRequest { number, size };
                prop_assert!(request.check(count).is_ok());
                let offset = request.offset().unwrap();
                seen += (count - offset).clamp(0, size);
            }
            prop_assert_eq!(seen, count);
            let past_the_end = PageRequest { number: pages + 1, size };
            prop_assert!(past_the_end.check(count).is_err());
        }
    }
}
