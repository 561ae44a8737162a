//! CSS class names carrying a build hash (`primary--HPfPc`), like a real front-end build. The
//! hash changes with the seed, so automation must rely on text, roles, ARIA labels and stable
//! attributes rather than these names.

use crate::seed::hash_tag;

macro_rules! classes {
    ($($field:ident => $name:literal),+ $(,)?) => {
        /// The page's class names for one seed.
        #[derive(Debug, Clone)]
        pub struct Classes {
            $(#[doc = $name] pub $field: String,)+
        }

        impl Classes {
            /// Class names for `seed`.
            pub fn new(seed: u64) -> Self {
                Self { $($field: format!("{}--{}", $name, hash_tag(seed, $name)),)+ }
            }
        }
    };
}

classes! {
    header => "header",
    logo => "logo",
    nav => "navLink",
    account => "accountLink",
    grid => "productGrid",
    card => "productCard",
    swatch => "swatch",
    price => "price",
    mrp => "mrp",
    off => "offTag",
    primary => "primary",
    custom_btn => "customBtn",
    secondary => "secondary",
    toast => "toast",
    bag => "bag-item",
    bag_name => "bag-name",
    qty => "quantityAmount",
    qty_btn => "qtyBtn",
    remove => "remove",
    summary => "summary",
    summary_row => "summaryRow",
    slider_wrapper => "sliderWrapper",
    slider_content => "sliderContent",
    slider_icon => "sliderIcon",
    coupon => "couponCard",
    address => "addressCard",
    edit_button => "editButton",
    btn_outlined => "btnOutlined",
    stroked_btn => "strokedBtn",
    special_btn => "specialBtn",
    dialog => "dialog",
    form => "form",
    field => "field",
    error => "errorText",
    step => "checkoutStep",
    pay_option => "payOption",
    order => "orderRow",
}
